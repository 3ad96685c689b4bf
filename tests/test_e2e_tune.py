"""End to end: `pipeline tune`'s trials as real DVC experiments in a temporary copy of the repository: every trial
that runs to its end listed by `dvc exp show` with its params and metrics, one whose curve is clearly worse (an
exploding learning rate) pruned at its second epoch (recorded in the study, not as an experiment), `dvc exp apply`
bringing a trial back, and the workspace's params as they were."""

import json
import sys
from pathlib import Path

import pytest

from pipeline.core.paths import Paths
from pipeline.tools.tune import Study
from pipeline.tools.tune_dvc import tune_in_repo
from tests.helpers.params import tiny_raw
from tests.helpers.workspace import GIT_ENV, attempt, committed_repro, dvc

pytestmark = pytest.mark.slow
MODEL = "catsdogs_cnn"
LRS = (0.001, 0.002, 50.0)  # the third explodes: pruned at its second epoch against the median of the first two


def test_every_trial_run_to_its_end_is_an_experiment_and_a_clearly_worse_one_is_pruned(tmp_path: Path, monkeypatch):
    root = committed_repro(tmp_path / "repo", tiny_raw(**{f"models.{MODEL}.epochs": 3}), f"evaluate@{MODEL}")
    (root / "space.yaml").write_text(f"models.{MODEL}.lr: {{choices: {list(LRS)}}}\n")
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
    study = Study(MODEL, root / ".dvc" / "tmp" / "tune" / f"{MODEL}.sqlite3", "val_loss").open()
    for lr in LRS:
        study.enqueue_trial({f"models.{MODEL}.lr": lr})

    found = tune_in_repo(Paths(root), MODEL, 3, root / "space.yaml", 0, "median")

    assert [trial["state"] for trial in found["trials"]] == ["COMPLETE", "COMPLETE", "PRUNED"]
    assert found["trials"][2]["pruned_at"] == 2
    shown = json.loads(dvc(root, "exp", "show", "--json"))
    experiments = {
        exp["name"]: exp["data"]
        for baseline in shown
        for group in baseline.get("experiments") or []
        for exp in group["revs"]
    }
    lrs = {name: data["params"]["params.yaml"]["data"]["models"][MODEL]["lr"] for name, data in experiments.items()}
    assert lrs == {f"tune-{MODEL}-0": LRS[0], f"tune-{MODEL}-1": LRS[1]}
    assert "metrics/catsdogs_cnn/test.json" in experiments[f"tune-{MODEL}-1"]["metrics"]
    assert (root / "params.yaml").read_text() == study.user_attrs["baseline_params"]

    applied = attempt(root, sys.executable, "-m", "dvc", "exp", "apply", f"tune-{MODEL}-1")
    assert f"lr: {LRS[1]}" in (root / "params.yaml").read_text()
    assert (root / "models" / f"{MODEL}.pt").is_file()
    missing = [line for line in applied.stderr.splitlines() if line.startswith(("models/", "metrics/"))]
    assert all("export" in line or line.endswith((".onnx", ".pt2")) for line in missing)  # the export never ran here
    assert sorted(path.name for path in (root / "reports" / "tune" / MODEL).iterdir()) == [
        "optimisation_history.png", "param_importances.png", "summary.json"
    ]
