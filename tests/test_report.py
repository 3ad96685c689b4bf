"""The experiments report on hand-built `dvc exp show` states; tests/test_e2e.py runs it on real experiments."""

import copy
from pathlib import Path

import pytest

from pipeline.analysis import report as report_module
from pipeline.analysis.report import (
    Run,
    best_run,
    changed_models,
    collect_runs,
    keys_that_vary,
    flatten,
    markdown,
)
from pipeline.core.errors import PipelineError

PARAMS = {
    "seed": 7,
    "aug": {"rotation": 0, "hflip": 0},
    "models": {"cnn": {"dataset": "catsdogs", "dropout": [0.25, 0.5]}, "mlp": {"dataset": "cifar10"}},
}


def _state(
    rev: str,
    name: str | None,
    scores: dict[str, tuple[float, float, float]],
    gaps: dict | None = None,
    when: str = "2026-01-01T00:00:00",
    **changes,
) -> dict:
    """A run as `dvc exp show --json` gives it: params.yaml's content, each model's test.json and its train
    metrics.json; `scores` are (kept epoch's validation accuracy, test accuracy, test loss)."""
    params = copy.deepcopy(PARAMS)
    for key, value in changes.items():
        node = params
        *parents, leaf = key.split("__")
        for part in parents:
            node = node[part]
        node[leaf] = value
    metrics = {}
    for model, (val, acc, loss) in scores.items():
        metrics[f"metrics/{model}/test.json"] = {"data": {"accuracy": acc, "loss": loss, "samples": 10}}
        metrics[f"metrics/{model}/train/metrics.json"] = {"data": {"step": 2, "best": {"epoch": 2, "val/acc": val}}}
    for model, gap in (gaps or {}).items():
        metrics[f"metrics/{model}/train/metrics.json"]["data"]["bn_check"] = gap
    data = {"timestamp": when, "params": {"params.yaml": {"data": params}}, "metrics": metrics}
    return {"rev": rev, "name": name, "data": data}


def _shown(baseline: dict, *experiments: dict, workspace: dict | None = None) -> list[dict]:
    baseline = {**baseline, "experiments": [{"revs": [exp]} for exp in experiments]}
    return [workspace or _state("workspace", None, {}), baseline]


@pytest.fixture
def fake_repo(monkeypatch):
    """Replace DVC's experiment listing with hand-built states."""

    def install(states: list[dict]) -> None:
        class State:
            def __init__(self, data: dict) -> None:
                self.data = data

            def dumpd(self) -> dict:
                return self.data

        class Experiments:
            def show(self, **_: object) -> list[State]:
                return [State(state) for state in states]

        class Repo:
            experiments = Experiments()

            def __init__(self, root: str) -> None:
                pass

            def __enter__(self) -> "Repo":
                return self

            def __exit__(self, *_: object) -> None:
                pass

        monkeypatch.setattr("dvc.repo.Repo", Repo)

    return install


BASELINE = _state("a" * 40, "main", {"cnn": (0.72, 0.70, 0.60), "mlp": (0.31, 0.30, 2.0)})
ROTATED = _state(
    "b" * 40, "rot-20", {"cnn": (0.76, 0.75, 0.55), "mlp": (0.31, 0.30, 2.0)}, when="2026-01-02", aug__rotation=20
)
FLIPPED = _state(
    "c" * 40, "flip", {"cnn": (0.66, 0.65, 0.70), "mlp": (0.31, 0.30, 2.0)}, when="2026-01-03", aug__hflip=0.5
)


def test_collect_runs_lists_the_baseline_then_its_experiments_oldest_first(fake_repo):
    fake_repo(_shown(BASELINE, FLIPPED, ROTATED))
    runs = collect_runs(Path("."))
    assert [run.name for run in runs] == ["main", "rot-20", "flip"]
    assert runs[1].params["aug.rotation"] == 20
    assert runs[1].scores == {
        "cnn": {"val_acc": 0.76, "accuracy": 0.75, "loss": 0.55},
        "mlp": {"val_acc": 0.31, "accuracy": 0.30, "loss": 2.0},
    }
    assert runs[0].label == "main (aaaaaaa)"


def test_the_workspace_stands_in_for_a_baseline_commit_without_results(fake_repo):
    workspace = _state("workspace", None, {"cnn": (0.7, 0.71, 0.6)})
    fake_repo(_shown(_state("a" * 40, "main", {}), ROTATED, workspace=workspace))
    runs = collect_runs(Path("."))
    assert [run.name for run in runs] == ["workspace", "rot-20"]
    assert runs[0].rev is None and runs[0].label == "workspace"


def test_no_results_anywhere_is_an_error_that_says_what_to_run(fake_repo):
    fake_repo(_shown(_state("a" * 40, "main", {})))
    with pytest.raises(PipelineError, match="no experiment has test results; run `dvc repro` or `dvc exp run`"):
        collect_runs(Path("."))


def test_outside_a_dvc_repository_is_a_clear_error(tmp_path):
    with pytest.raises(PipelineError, match="cannot read DVC experiments"):
        collect_runs(tmp_path)


def _runs(*states: dict) -> list[Run]:
    return [report_module._run(state, state["name"], state["rev"]) for state in states]


def test_flatten_gives_dotted_keys_and_keeps_lists_whole():
    assert dict(flatten({"a": {"b": 1, "c": [1, 2]}, "d": None})) == {"a.b": 1, "a.c": [1, 2], "d": None}


def test_only_params_that_differ_are_columns_including_added_keys():
    added = _state("d" * 40, "lr", {"cnn": (0.7, 0.7, 0.6)}, models__cnn__lr=0.01, models__cnn__dropout=[0, 0])
    runs = _runs(BASELINE, ROTATED, FLIPPED, added)
    assert keys_that_vary(runs) == ["aug.rotation", "aug.hflip", "models.cnn.dropout", "models.cnn.lr"]


def test_models_with_the_same_scores_in_every_run_are_left_out():
    assert changed_models(_runs(BASELINE, ROTATED, FLIPPED)) == ["cnn"]


def test_the_best_run_has_the_highest_validation_accuracy_and_the_baseline_wins_ties():
    runs = _runs(BASELINE, ROTATED, FLIPPED)
    assert best_run(runs, "cnn").name == "rot-20"
    assert best_run(runs, "mlp").name == "main"


def test_the_best_run_is_chosen_by_validation_never_by_test():
    lucky_on_test = _state("d" * 40, "lucky", {"cnn": (0.60, 0.90, 0.40)}, when="2026-01-04", aug__hflip=1)
    runs = _runs(BASELINE, ROTATED, lucky_on_test)
    assert best_run(runs, "cnn").name == "rot-20"
    page = markdown(runs, ["cnn"], {"cnn": None})
    assert "| `lucky (ddddddd)` | 0 | 1 | 0.6000 | 0.9000 | 0.4000 |" in page.splitlines()


def test_markdown_has_a_row_per_run_the_best_in_bold_and_a_chart_per_model():
    runs = _runs(BASELINE, ROTATED, FLIPPED)
    page = markdown(runs, ["cnn"], {"cnn": "experiments/cnn.png"})
    lines = page.splitlines()
    assert "| experiment | `aug.rotation` | `aug.hflip` | cnn val acc | cnn test acc | cnn test loss |" in lines
    assert "| `main (aaaaaaa)` | 0 | 0 | 0.7200 | 0.7000 | 0.6000 |" in lines
    assert "| `rot-20 (bbbbbbb)` | 20 | 0 | **0.7600** | 0.7500 | 0.5500 |" in lines
    assert "| `flip (ccccccc)` | 0 | 0.5 | 0.6600 | 0.6500 | 0.7000 |" in lines
    assert "Same test scores in every run, so left out: mlp." in lines
    assert (
        "Best run by validation accuracy `rot-20 (bbbbbbb)` (0.7600): test accuracy 0.7500 (+0.0500 on the baseline)."
        in lines
    )
    assert "![cnn learning curves](experiments/cnn.png)" in lines


def test_report_writes_markdown_and_the_baseline_and_best_curves(fake_repo, tmp_path, monkeypatch):
    fake_repo(_shown(BASELINE, ROTATED, FLIPPED))
    read = []

    def history(root: Path, rev: str | None, model: str) -> list[dict[str, float]]:
        read.append((rev, model))
        return [{"epoch": 1, "train/loss": 0.7, "val/loss": 0.69, "train/acc": 0.5, "val/acc": 0.55}]

    monkeypatch.setattr(report_module, "read_history", history)
    out = report_module.report(tmp_path / "reports" / "experiments.md")
    assert read == [("a" * 40, "cnn"), ("b" * 40, "cnn")]
    assert (tmp_path / "reports" / "experiments" / "cnn.png").read_bytes().startswith(b"\x89PNG")
    assert "![cnn learning curves](experiments/cnn.png)" in out.read_text()


def test_report_on_an_unknown_model_names_the_known_ones(fake_repo, tmp_path):
    fake_repo(_shown(BASELINE, ROTATED))
    with pytest.raises(PipelineError, match=r"--model nope: no test results in any run; .*: cnn, mlp"):
        report_module.report(tmp_path / "r.md", ["nope"])


def test_a_large_batchnorm_mode_gap_is_flagged():
    gap = {"train_mode_acc": 0.9, "eval_mode_acc": 0.5, "acc_gap": 0.4, "large": True}
    small = {"train_mode_acc": 0.9, "eval_mode_acc": 0.88, "acc_gap": 0.02, "large": False}
    runs = _runs(
        _state("a" * 40, "main", {"cnn": (0.7, 0.7, 0.6)}, gaps={"cnn": small}),
        _state("b" * 40, "bn", {"cnn": (0.5, 0.5, 0.9)}, gaps={"cnn": gap}, aug__rotation=5),
    )
    assert runs[1].mode_gaps["cnn"] == gap
    page = markdown(runs, ["cnn"], {"cnn": None})
    assert "**BatchNorm check:**" in page
    assert "- `bn (bbbbbbb)` cnn: train-mode accuracy 0.9000, eval-mode 0.5000 (gap 0.4000)" in page
    assert "main (aaaaaaa)` cnn" not in page


def test_no_batchnorm_warning_without_a_large_gap():
    assert "BatchNorm check" not in markdown(_runs(BASELINE, ROTATED), ["cnn"], {"cnn": None})


def test_report_keeps_the_baseline_and_the_named_experiments(fake_repo, tmp_path, monkeypatch):
    fake_repo(_shown(BASELINE, ROTATED, FLIPPED))
    monkeypatch.setattr(report_module, "read_history", lambda root, rev, model: [])
    page = report_module.report(tmp_path / "r.md", experiments=["flip"]).read_text()
    assert "`flip (ccccccc)`" in page and "`main (aaaaaaa)`" in page and "rot-20" not in page


def test_report_on_an_unknown_experiment_names_the_known_ones(fake_repo, tmp_path):
    fake_repo(_shown(BASELINE, ROTATED, FLIPPED))
    with pytest.raises(PipelineError, match=r"--exp nope: no such finished experiment; known: rot-20, flip"):
        report_module.report(tmp_path / "r.md", experiments=["nope"])
