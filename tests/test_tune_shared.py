"""A study shared by workers in a real PostgreSQL (tests.helpers.postgres): a worker killed with SIGKILL in the
middle of a trial leaves that trial running until its heartbeat goes stale; the other worker then marks it failed,
runs its values again (the retry), and finishes the study, the killed trial counted as failed, never as complete.
The workers are processes running the real study code with a stand-in for `dvc exp run`."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.tuning.storage import Sharing
from pipeline.tuning.study import Study

pytestmark = pytest.mark.slow
SHARING = Sharing(heartbeat_s=1, grace_s=3, retries=1)
TRIALS = 3

# A worker: `run_trials` on the study named argv[2] at the URL argv[1]. With argv[3] = "hang", its first run writes
# the experiment's name to argv[4] and hangs there (to be killed); otherwise each run takes 0.2 s.
WORKER = f"""
import sys, time
from pathlib import Path
from pipeline.tuning.space import Dimension
from pipeline.tuning.storage import Sharing
from pipeline.tuning.study import RunResult, Study, run_trials

url, name, mode, marker = sys.argv[1:5]

class StandIn:
    def run(self, experiment, values, watch):
        if mode == "hang":
            Path(marker).write_text(experiment)
            time.sleep(600)
        time.sleep(0.2)
        return RunResult(objective=values["x"], val_acc=0.5, test_acc=0.5)

sharing = Sharing(heartbeat_s={SHARING.heartbeat_s}, grace_s={SHARING.grace_s}, retries={SHARING.retries})
study = Study("m", url, "val_loss", "none", sharing, name).open()
run_trials(study, {{"x": Dimension(low=0.0, high=1.0)}}, {TRIALS}, StandIn())
"""


def worker(url: str, name: str, mode: str, marker: Path) -> subprocess.Popen:
    """A worker process on the study `name` (see WORKER)."""
    return subprocess.Popen([sys.executable, "-c", WORKER, url, name, mode, str(marker)])


def wait_for(path: Path, timeout_s: float = 120) -> str:
    """The text of `path` once it exists."""
    deadline = time.monotonic() + timeout_s
    while not path.is_file() or not path.read_text():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)
    return path.read_text()


def test_a_worker_killed_mid_trial_leaves_it_failed_and_the_other_worker_finishes_the_study(postgres_url, tmp_path):
    marker = tmp_path / "running"
    killed = worker(postgres_url, "killed-mid-trial", "hang", marker)
    experiment = wait_for(marker)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    survivor = worker(postgres_url, "killed-mid-trial", "run", marker)
    assert survivor.wait(timeout=300) == 0

    trials = Study("m", postgres_url, "val_loss", "none", SHARING, "killed-mid-trial").open().get_trials()
    number = int(experiment.rsplit("-", 1)[1])
    assert experiment == f"killed-mid-trial-{number}" and trials[number].state.name == "FAIL"
    assert sorted(trial.state.name for trial in trials) == ["COMPLETE"] * TRIALS + ["FAIL"]
    retried = [trial.system_attrs.get("failed_trial") for trial in trials]  # what Optuna's retry records
    assert retried.count(number) == 1
    assert trials[retried.index(number)].params == trials[number].params


def test_workers_of_a_shared_study_do_not_propose_the_same_values(postgres_url):
    """Two workers' samplers seeded alike would draw the same first values: shared, they are not seeded."""
    opened = [Study("m", postgres_url, "val_loss", "none", SHARING, "unseeded").open() for _ in range(2)]
    values = [study.ask().suggest_float("x", 0.0, 1.0) for study in opened]
    assert values[0] != values[1]
