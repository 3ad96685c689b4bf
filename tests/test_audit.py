"""The audit stage on planted problems: wrong labels, blanks and near-duplicates found, with the columns the
issue asks for; and its finders on made-up probabilities and features."""

import json

import numpy as np
import pandas as pd
import pytest

from pipeline.analysis.audit_findings import label_issues, outliers
from pipeline.config.params import Params, parse_params
from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths
from pipeline.stages.audit import audit
from pipeline.stages.download import download
from pipeline.stages.preprocess import preprocess
from pipeline.stages.split import split
from tests.helpers.params import tiny_raw
from tests.helpers.planted import Planted, planted, write_planted


def _recall_precision(found: set[str], wanted: set[str]) -> tuple[float, float]:
    hits = len(found & wanted)
    return hits / len(wanted), hits / max(1, len(found))


def test_label_issues_are_the_images_the_models_give_another_class():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 100)
    truth = labels.copy()
    moved = rng.choice(len(labels), 15, replace=False)
    labels[moved] = (labels[moved] + 1) % 3
    probabilities = np.full((len(labels), 3), 0.05)
    probabilities[np.arange(len(labels)), truth] = 0.9
    paths = [f"img{n}.png" for n in range(len(labels))]
    table = label_issues(paths, labels, probabilities, ("a", "b", "c"), ["train"] * len(labels))
    assert list(table.columns[:4]) == ["path", "given", "suggested", "score"]
    recall, precision = _recall_precision(set(table["path"]), {paths[n] for n in moved})
    assert recall == precision == 1.0
    assert table["score"].is_monotonic_decreasing


def test_outliers_are_the_points_far_from_every_class():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 10, (3, 8))
    features = np.concatenate([centre + rng.normal(0, 1, (100, 8)) for centre in centres] + [np.full((2, 8), 60.0)])
    paths = [f"img{n}.png" for n in range(len(features))]
    table = outliers(paths, features, 3.0, ["train"] * len(features))
    assert list(table.columns[:2]) == ["path", "score"]
    recall, precision = _recall_precision(set(table["path"]), set(paths[-2:]))
    assert recall == 1.0 and precision >= 0.5


def planted_params(root) -> Params:
    """Params of a planted dataset with an MLP to audit it by."""
    raw = tiny_raw(**{
        "data.planted": {"source": "local", "path": str(root), "layout": "class_folders"},
        "split.planted": {"train": None, "val": 0.2, "test": 0.2},
        "preprocess.planted": {"image_size": 24, "color": "rgb"},
        "models.planted_mlp": {"dataset": "planted", "arch": "mlp", "hidden": [32], "batch_size": 16, "lr": 0.003},
        "audit.planted": {"model": "planted_mlp", "folds": 4, "epochs": 12},
    })
    return parse_params(raw)


def run_audit(paths: Paths, tree: Planted) -> dict:
    """The planted tree taken through download, split, preprocess and audit under `paths`."""
    params = planted_params(write_planted(paths.root / "tree", tree))
    download("planted", params.data["planted"], params.seed, paths)
    split("planted", params.split["planted"], params.seed, paths, near=params.near_duplicates("planted"))
    preprocess("planted", params.preprocess["planted"], paths)
    return audit("planted", params.audit_of("planted"), params.audit_model("planted"), params.seed, paths)


@pytest.mark.slow
def test_the_stage_finds_planted_label_errors_blanks_and_copies(paths):
    tree = planted(per_class=80, copies=8, moved=12, blanks=3)
    summary = run_audit(paths, tree)
    folder = paths.audit_dir("planted")
    suspects = pd.read_csv(folder / "label_issues.csv")
    far = pd.read_csv(folder / "outliers.csv")
    pairs = pd.read_csv(folder / "near_duplicates.csv")
    assert list(suspects.columns[:4]) == ["path", "given", "suggested", "score"]
    assert list(far.columns[:2]) == ["path", "score"]
    assert list(pairs.columns) == ["path_a", "path_b", "distance", "splits"]
    recall, precision = _recall_precision(set(suspects["path"]), set(tree.moved))
    assert recall >= 0.8 and precision >= 0.6, (recall, precision, suspects)
    right = suspects.set_index("path").loc[sorted(set(tree.moved) & set(suspects["path"])), "suggested"]
    assert (right == pd.Series(tree.moved)[right.index]).all()
    recall, _ = _recall_precision(set(far["path"]), set(tree.blanks))
    assert recall == 1.0, far
    found = {frozenset(pair) for pair in zip(pairs["path_a"], pairs["path_b"], strict=True)}
    assert found == {frozenset(pair) for pair in tree.copies}
    assert json.loads((folder / "summary.json").read_text()) == summary
    assert (folder / "plots" / "label_issues.png").is_file() and (folder / "plots" / "near_duplicates.png").is_file()


@pytest.mark.slow
def test_a_table_is_audited_for_label_issues_only(paths):
    raw = tiny_raw(**{"audit.iris": {"model": "iris_mlp", "folds": 3, "epochs": 20}})
    raw["data"]["iris"], raw["split"]["iris"] = {"source": "sklearn"}, {"train": 30, "val": 10, "test": 10}
    raw["preprocess"]["iris"] = {"normalize": True}
    raw["models"]["iris_mlp"] = {"dataset": "iris", "arch": "mlp", "hidden": [8], "batch_size": 5}
    params = parse_params(raw)
    download("iris", params.data["iris"], params.seed, paths)
    split("iris", params.split["iris"], params.seed, paths, near=params.near_duplicates("iris"))
    preprocess("iris", params.preprocess["iris"], paths)
    summary = audit("iris", params.audit_of("iris"), params.audit_model("iris"), params.seed, paths)
    assert summary["near_duplicates"] == {"total": 0}
    assert summary["label_issues"]["total"] < 15  # Iris is clean but for a few borderline flowers


def test_the_folds_of_a_pretrained_model_start_from_its_weights_stage(paths):
    tree = write_planted(paths.root / "tree", planted(per_class=8, copies=0, moved=0, blanks=0))
    raw = planted_params(tree).raw()
    raw["models"]["planted_resnet"] = {"dataset": "planted", "arch": "resnet18", "pretrained": True, "epochs": 1}
    raw["audit"]["planted"]["model"] = "planted_resnet"
    params = parse_params(raw)
    download("planted", params.data["planted"], params.seed, paths)
    split("planted", params.split["planted"], params.seed, paths, near=params.near_duplicates("planted"))
    preprocess("planted", params.preprocess["planted"], paths)
    with pytest.raises(PipelineError, match=r"models\.planted_resnet: its pretrained weights .* `dvc repro weights@planted_resnet`"):
        audit("planted", params.audit_of("planted"), params.audit_model("planted"), params.seed, paths)
