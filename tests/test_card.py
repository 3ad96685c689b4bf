"""The model card: written by evaluate from a tiny trained model, and its parts computed right by hand."""

import dataclasses
import errno
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pipeline.analysis.card import (
    CardFacts,
    confusion_counts,
    model_card,
    worst_confusions,
)
from pipeline.config.archs import ARCH_ARGS
from pipeline.config.datasets import CatsDogsData
from pipeline.config.params import parse_params
from pipeline.config.training import AugParams, TrainParams
from pipeline.core.atomic import DiskFullError
from pipeline.core.paths import Paths
from pipeline.analysis.provenance import git_commit
from pipeline.data.store import DatasetMeta
from pipeline.models.file import SavedModel
from pipeline.stages.evaluate import evaluate
from tests.helpers.params import tiny_raw

SYNTHETIC = "**The sample is synthetic**"


@pytest.fixture(scope="module")
def trained(tiny_run, tmp_path_factory) -> Paths:
    """A copy of the tiny trained run (conftest's `tiny_run`) for this module, whose tests evaluate it again."""
    return Paths(shutil.copytree(tiny_run[0].root, tmp_path_factory.mktemp("card") / "run"))


@pytest.fixture(scope="module")
def evaluated(trained) -> tuple[Paths, dict, str]:
    """The tiny model evaluated with its params' `data` blocks (source `sample`): paths, result, card."""
    result = evaluate("catsdogs_cnn", trained, "cpu", data=parse_params(tiny_raw()).data)
    return trained, result, trained.model_card("catsdogs_cnn").read_text()


def _table(card: str, header: str) -> list[list[str]]:
    """The rows of the card's table whose header line starts with `header`, as cells."""
    lines = card.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_the_card_lists_the_params_that_differ_from_the_defaults_and_only_those(evaluated):
    _, _, card = evaluated
    # tiny params: epochs 2 in the model block, batch_size 4 and device cpu under `train`; lr, optimizer, dropout
    # and every aug key are given at their defaults
    assert _table(card, "| param |") == [
        ["`train.epochs`", "`2`", "`10`"],
        ["`train.batch_size`", "`4`", "`32`"],
        ["`train.device`", "`cpu`", "`auto`"],
    ]


def test_the_per_class_table_has_a_row_per_class_with_evaluates_figures(evaluated):
    _, result, card = evaluated
    expected = [
        [f"`{name}`", *(f"{figures[key]:.3f}" for key in ("precision", "recall", "f1")), str(figures["support"])]
        for name, figures in result["per_class"].items()
    ]
    assert _table(card, "| class |") == expected
    assert [row[0] for row in expected] == ["`cat`", "`dog`"]
    figures = (result["accuracy"], result["macro"]["f1"], result["ece"], result["loss"])
    assert _table(card, "| accuracy |") == [[f"{value:.3f}" for value in figures]]


def test_the_card_says_what_the_model_is_and_the_input_it_expects(evaluated):
    _, result, card = evaluated
    assert "- **Dataset**: `catsdogs` (source `sample`), 2 classes; images per split: train 12, val 6, test 6" in card
    assert "size 32, color `gray`, resize `squash`, normalize `false`" in card
    assert "- **Seed**: 7" in card
    assert f"- **Weights kept**: epoch {result['epoch']} of 2, the one with the lowest validation loss" in card
    assert "made 32x32 pixels, grayscale, 1 channel" in card
    assert "**Normalisation**: pixel values scaled to [0, 1], not standardised" in card
    assert "**Classes**, in label order: 0 `cat`, 1 `dog`" in card
    assert "`uv run pipeline predict catsdogs_cnn PATH`" in card
    assert "- Trained on 12 images of 2 classes (`cat` 6, `dog` 6)" in card


def test_the_worst_confused_pairs_are_counted_and_shared_by_the_true_class():
    matrix = np.array([[6, 2, 2], [2, 1, 0], [0, 6, 4]])  # true class by row: supports 10, 3 and 10
    actual = np.repeat([0, 0, 0, 1, 1, 2, 2], [6, 2, 2, 2, 1, 6, 4])
    predicted = np.repeat([0, 1, 2, 0, 1, 1, 2], [6, 2, 2, 2, 1, 6, 4])
    assert (confusion_counts(actual, predicted, 3) == matrix).all()
    worst = worst_confusions(matrix, ["a", "b", "c"], top=3)
    assert [(p["actual"], p["predicted"], p["count"]) for p in worst] == [("c", "b", 6), ("b", "a", 2), ("a", "b", 2)]
    assert [p["share"] for p in worst] == pytest.approx([0.6, 2 / 3, 0.2])  # a tie in count: the larger share first
    assert len(worst_confusions(matrix, ["a", "b", "c"])) == 4  # never-confused pairs are left out
    assert worst_confusions(np.diag([3, 4]), ["a", "b"]) == []


def test_the_cards_confusions_are_those_of_the_test_predictions(evaluated):
    paths, _, card = evaluated
    records = json.loads(paths.confusion("catsdogs_cnn").read_text())
    mistakes = [(r["actual"], r["predicted"]) for r in records if r["actual"] != r["predicted"]]
    if not mistakes:
        assert "No test sample is misclassified." in card
        return
    rows = _table(card, "| true class |")
    support = {name: sum(r["actual"] == name for r in records) for name in ("cat", "dog")}
    expected = sorted({pair: mistakes.count(pair) for pair in mistakes}.items(), key=lambda item: -item[1])
    assert rows == [[f"`{t}`", f"`{p}`", str(n), f"{n / support[t]:.1%}"] for (t, p), n in expected]


def test_a_sample_source_is_called_synthetic_and_a_local_one_is_not(trained, evaluated):
    _, _, card = evaluated
    assert SYNTHETIC in card and "`data.catsdogs.source` is `sample`" in card
    evaluate("catsdogs_cnn", trained, "cpu", data={"catsdogs": CatsDogsData(source="local", path="/data/cats")})
    local = trained.model_card("catsdogs_cnn").read_text()
    assert "(source `local`)" in local and SYNTHETIC not in local
    evaluate("catsdogs_cnn", trained, "cpu")
    assert "source not known" in trained.model_card("catsdogs_cnn").read_text()


def test_outside_a_git_repository_the_card_says_so(evaluated):
    _, _, card = evaluated
    assert "- **Code** (when evaluate ran): not a git repository" in card


def _git(root: Path, *args: str) -> str:
    command = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.com", *args]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


def test_git_commit_names_the_commit_and_says_when_tracked_files_changed(tmp_path, monkeypatch):
    assert git_commit(tmp_path) == "not a git repository"
    _git(tmp_path, "init", "-q")
    (tmp_path / "code.py").write_text("a = 1\n")
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "first")
    head = f"git commit {_git(tmp_path, 'rev-parse', 'HEAD')}"
    assert git_commit(tmp_path) == head
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")  # DVC rewrites it during a run
    (tmp_path / "notes.txt").write_text("untracked\n")
    assert git_commit(tmp_path) == head
    (tmp_path / "code.py").write_text("a = 2\n")
    assert git_commit(tmp_path) == f"{head} + uncommitted changes"
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert git_commit(tmp_path).startswith("unknown (")


def test_a_table_datasets_card_describes_feature_rows():
    classes = ["setosa", "versicolor"]
    saved = SavedModel(
        model="iris_mlp", dataset="iris", arch="mlp", classes=classes, size=1, channels=2, seed=3, epoch=3, kept="last",
        normalization={"normalize": True, "mean": [3.7, 1.2], "std": [1.76, 0.76]}, preprocessing=None,
        train=TrainParams(keep="last").model_dump(mode="json"), aug=AugParams().model_dump(mode="json"),
        arch_args=ARCH_ARGS["mlp"]().model_dump(mode="json"),
    )
    figures = {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 5}
    facts = CardFacts(
        name="iris_mlp", saved=saved,
        metrics={"accuracy": 1.0, "loss": 0.1, "ece": 0.05, "samples": 10, "macro": {"f1": 1.0}, "tta": "none"},
        per_class={name: figures for name in classes}, confusion=np.diag([5, 5]),
        meta=DatasetMeta(kind="table", classes=classes, size=1, features=["petal_length", "petal_width"],
                         normalize=True, mean=[3.7, 1.2], std=[1.76, 0.76]),
        counts={split: dict.fromkeys(classes, n) for split, n in (("train", 30), ("val", 10), ("test", 5))},
        source="sklearn", commit="git commit abc",
    )
    card = model_card(facts)
    assert "- **A row of 2 features**, in this order: `petal_length`, `petal_width`" in card
    assert "standardised per feature with the training split's mean (3.7, 1.2) and std (1.76, 0.76)" in card
    assert "`pipeline predict` takes images; run this table model on rows through its export" in card
    assert "epoch 3 of 10, the last (`train.keep: last`)" in card
    assert "Every param is at its default." not in card  # keep: last differs
    assert "No test sample is misclassified." in card
    assert "- Trained on 60 rows of 2 classes" in card and SYNTHETIC not in card
    assert "**The data was not audited**: no `audit.iris` block" in card
    audited = {"near_duplicates": {"total": 0}, "label_issues": {"train": 2, "total": 3}, "outliers": {"total": 1}}
    card = model_card(dataclasses.replace(facts, audit=audited))
    assert "audited (`audit@iris`): 0 near-duplicate pairs, 3 likely label errors, 1 outliers found" in card


def test_evaluate_writes_the_card_atomically(trained, monkeypatch):
    card = trained.model_card("catsdogs_cnn")
    evaluate("catsdogs_cnn", trained, "cpu")
    before = card.read_text()
    write_text = Path.write_text

    def disk_full_halfway(self, text, *args, **kwargs):
        if self.name.endswith(".card.md"):
            write_text(self, text[: len(text) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return write_text(self, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", disk_full_halfway)
    with pytest.raises(DiskFullError, match=r"catsdogs_cnn\.card\.md: no space left"):
        evaluate("catsdogs_cnn", trained, "cpu")
    assert card.read_text() == before
    assert [path.name for path in card.parent.iterdir() if path.name.endswith(".tmp")] == []
