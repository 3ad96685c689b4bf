"""End to end: a queued sweep run by `dvc queue` in parallel, compared with `dvc exp show`, `dvc metrics diff`,
`dvc plots diff` and the `report` command, in a temporary copy of the repository."""

import json
import sys
from pathlib import Path

import pytest
from tests.helpers.params import tiny_raw
from tests.helpers.workspace import committed_repro, dvc, run, wait_for_queue


pytestmark = pytest.mark.slow

ROTATIONS = (10, 30)
DATA_STAGES = ("download@catsdogs", "split@catsdogs", "preprocess@catsdogs")


def _experiments(root: Path) -> dict[str, dict]:
    """Each experiment of the baseline commit by name: its params.yaml and metrics as `dvc exp show --json` has them."""
    shown = json.loads(dvc(root, "exp", "show", "--json"))
    return {
        exp["name"]: exp["data"]
        for baseline in shown
        for group in baseline.get("experiments") or []
        for exp in group["revs"]
    }


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict]]:
    """A committed tiny repo after a queued two-point `aug.rotation` sweep run two at a time."""
    root = committed_repro(tmp_path_factory.mktemp("sweep"), tiny_raw())
    sweep = ",".join(map(str, ROTATIONS))
    dvc(root, "exp", "run", "--queue", "-S", f"aug.rotation={sweep}")
    dvc(root, "queue", "start", "-j", "2")
    status = wait_for_queue(root)
    assert status.count("Success") == len(ROTATIONS), status
    return root, _experiments(root)


def test_the_queued_sweep_gives_one_experiment_per_value_with_its_own_metrics(swept):
    _, experiments = swept
    rotation = {name: data["params"]["params.yaml"]["data"]["aug"]["rotation"] for name, data in experiments.items()}
    assert sorted(rotation.values()) == list(ROTATIONS)
    test_scores = [data["metrics"]["metrics/catsdogs_cnn/test.json"]["data"] for data in experiments.values()]
    assert all({"accuracy", "loss"} <= set(scores) for scores in test_scores)
    assert test_scores[0]["loss"] != test_scores[1]["loss"]


def test_the_data_stages_ran_once_and_each_experiment_trained_and_evaluated(swept):
    root, experiments = swept
    for name in experiments:
        log = dvc(root, "queue", "logs", name)
        assert all(f"Stage '{stage}' didn't change, skipping" in log for stage in DATA_STAGES), log
        assert "Running stage 'train@catsdogs_cnn'" in log and "Running stage 'evaluate@catsdogs_cnn'" in log


def test_metrics_diff_compares_two_experiments(swept):
    root, experiments = swept
    first, second = experiments
    diff = json.loads(dvc(root, "metrics", "diff", first, second, "--json"))
    assert "loss" in diff["metrics/catsdogs_cnn/test.json"]


def test_plots_diff_draws_both_experiments_learning_curves_on_one_chart(swept):
    root, experiments = swept
    curves = "metrics/catsdogs_cnn/train/plots/metrics"
    plots = json.loads(dvc(root, "plots", "diff", *experiments, "--targets", curves, "--json"))
    (chart,) = plots["data"][f"{curves}/val/loss.tsv"]
    assert sorted(chart["revisions"]) == sorted(experiments)
    points = chart["content"]["data"]["values"]
    assert {point["rev"] for point in points} == set(experiments)
    assert sorted({int(point["step"]) for point in points}) == [1, 2]  # epochs, as dvc.yaml's `x: step` says


def test_report_tabulates_the_sweep_and_charts_the_baseline_and_best_run(swept):
    root, experiments = swept
    run(root, sys.executable, "-m", "pipeline", "report", "--out", "reports/sweep.md")
    page = (root / "reports" / "sweep.md").read_text()
    assert "| experiment | `aug.rotation` | catsdogs_cnn val acc | catsdogs_cnn test acc | catsdogs_cnn test loss |" in page
    assert all(f"`{name} (" in page for name in experiments)
    assert (root / "reports" / "sweep" / "catsdogs_cnn.png").read_bytes().startswith(b"\x89PNG")
