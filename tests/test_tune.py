"""`pipeline tune`'s study, with a stand-in for `dvc exp run`: a clearly worse curve is pruned, an interrupted study
resumes to its number of trials, the seed check uses the report's Welch test, the figures and summary are written;
and how a run is stopped: its stage interrupted, not DVC."""

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from test_cli import assert_clean_error, invoke

import pipeline.tuning.study as study_module
import pipeline.tuning.trials as trials_module
from pipeline.analysis.seeds import welch_p
from pipeline.tuning.study import RunResult, Study, run_trials, seed_check, tune
from pipeline.tuning.text import tune_text
from pipeline.tuning.space import Dimension

KEY = "models.catsdogs_cnn.dense"
SPACE = {KEY: Dimension(choices=[8, 16, 64])}
EPOCHS = 4


class Interrupted(Exception):
    """Stands in for the `tune` process being killed."""


class FakeRuns:
    """Curves by the value of KEY: 64 is clearly worse (its val loss stays high). Records what it ran; raises
    Interrupted on the run numbered `kill_at` (counting from 1)."""

    def __init__(self, kill_at: int | None = None) -> None:
        self.runs: list[tuple[str, dict[str, Any], list[int]]] = []
        self.kill_at = kill_at

    def run(self, name: str, values: dict[str, Any], watch) -> RunResult:
        epochs: list[int] = []
        self.runs.append((name, values, epochs))
        if len(self.runs) == self.kill_at:
            raise Interrupted
        bad = values.get(KEY) == 64
        seed = values.get("seed", 0)
        for epoch in range(1, EPOCHS + 1):
            epochs.append(epoch)
            if watch(epoch, (2.0 if bad else 1.0 / epoch) + seed / 1000):
                return RunResult(objective=None, pruned_at=epoch)
        gain = 0.1 if values.get(KEY) == 16 else 0.0
        return RunResult(objective=1.0 / EPOCHS, val_acc=0.6 + gain + seed / 100, test_acc=0.55 + gain + seed / 100)


def study_in(tmp_path: Path | None, pruner: str = "median") -> Any:
    """The study of catsdogs_cnn on val loss, in SQLite under `tmp_path` (None: in memory, quicker)."""
    storage = None if tmp_path is None else tmp_path / "tune" / "catsdogs_cnn.sqlite3"
    return Study("catsdogs_cnn", storage, "val_loss", pruner).open()


def states(study) -> list[str]:
    return [trial.state.name for trial in study.get_trials()]


def test_a_trial_whose_curve_is_clearly_worse_is_pruned_at_its_second_epoch():
    study, runs = study_in(None), FakeRuns()
    for value in (8, 16, 64):
        study.enqueue_trial({KEY: value})
    run_trials(study, SPACE, 3, runs)
    assert states(study) == ["COMPLETE", "COMPLETE", "PRUNED"]
    assert runs.runs[2][2] == [1, 2] and study.trials[2].user_attrs["result"]["pruned_at"] == 2
    assert [name for name, _, _ in runs.runs] == [f"tune-catsdogs_cnn-{n}" for n in range(3)]


def test_an_interrupted_study_resumes_where_it_stopped(tmp_path):
    with pytest.raises(Interrupted):
        run_trials(study_in(tmp_path), SPACE, 3, FakeRuns(kill_at=2))
    study, runs = study_in(tmp_path), FakeRuns()
    assert states(study) == ["COMPLETE", "FAIL"]
    run_trials(study, SPACE, 3, runs)
    assert states(study)[:2] == ["COMPLETE", "FAIL"] and len(states(study)) == 4 and len(runs.runs) == 2
    assert all(state in ("COMPLETE", "PRUNED") for state in states(study)[2:])


def test_the_seed_check_runs_best_and_baseline_per_seed_with_the_reports_welch_test(monkeypatch):
    calls = []
    monkeypatch.setattr(study_module, "welch_p", lambda a, b: calls.append((a, b)) or welch_p(a, b))
    study, runs = study_in(None, "none"), FakeRuns()
    for value in (8, 16):
        study.enqueue_trial({KEY: value})
    run_trials(study, SPACE, 2, runs)
    check = seed_check(study, runs, [1, 2, 3])
    names = [name for name, _, _ in runs.runs[2:]]
    assert names[-2:] == ["tune-catsdogs_cnn-0-seed1", "tune-catsdogs_cnn-baseline-seed1"] and len(names) == 6
    assert runs.runs[-1][1] == {"seed": 1}  # the baseline at the first seed last: the workspace ends as it began
    assert calls == [
        (check.best["val_acc"], check.baseline["val_acc"]), (check.best["test_acc"], check.baseline["test_acc"])
    ]
    assert check.p_test == welch_p(check.best["test_acc"], check.baseline["test_acc"])
    assert seed_check(study, runs, [1, 2, 3]) == check and len(runs.runs) == 8  # remembered


def test_tune_writes_the_figures_and_the_summary(tmp_path):
    study, runs = study_in(None), FakeRuns()
    for value in (8, 16, 64):
        study.enqueue_trial({KEY: value})
    found = tune(study, SPACE, 3, runs, [1, 2], tmp_path / "reports")
    assert sorted(path.name for path in (tmp_path / "reports").iterdir()) == [
        "optimisation_history.png", "param_importances.png", "summary.json"
    ]
    assert [trial["state"] for trial in found["trials"]] == ["COMPLETE", "COMPLETE", "PRUNED"]
    text = tune_text(found)
    assert "pruned at epoch 2" in text and "seed check (2 seeds)" in text


def test_an_unknown_pruner_is_one_error_line_naming_the_option():
    assert_clean_error(invoke("tune", "catsdogs_cnn", "--pruner", "hyperband"), "--pruner: 'hyperband' is not one of")


# Stands in for `dvc exp run`: runs a stage command (DVC_STAGE set) and exits with its status, as DVC does; a SIGINT
# to this process itself would leave the marker file.
DVC_STAND_IN = """
import os, signal, subprocess, sys
signal.signal(signal.SIGINT, lambda *args: open(sys.argv[1], "w").close())
stage = [sys.executable, "-c", "import time; time.sleep(60)"]
sys.exit(subprocess.run(stage, env={**os.environ, "DVC_STAGE": "train@m"}).returncode)
"""


def test_a_run_is_stopped_by_interrupting_its_stage_and_dvc_itself_is_left_to_clean_up(tmp_path):
    marker = tmp_path / "dvc-interrupted"
    run = subprocess.Popen([sys.executable, "-c", DVC_STAND_IN, str(marker)], start_new_session=True)
    started = time.monotonic()
    trials_module._stop(run)
    assert run.returncode != 0 and not marker.exists()
    assert time.monotonic() - started < 30
