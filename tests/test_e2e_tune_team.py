"""End to end: two workers in two clones of a tiny project, one study in a real PostgreSQL (tests.helpers.postgres),
each `pipeline tune --storage URL --study team --push` as a team member would start it on their machine: every trial
ran once, every trial's experiment reached the shared git remote, the best trial is the same whoever asks, and the
clone that did not run it can `dvc exp pull` it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.tuning.storage import Sharing
from pipeline.tuning.study import Study
from tests.helpers.params import tiny_raw
from tests.helpers.workspace import command_env, committed_copy, dvc, run

pytestmark = pytest.mark.slow
MODEL = "catsdogs_cnn"
STUDY = "team"
TRIALS = 2
LRS = (0.001, 0.003)


def clone(origin: Path, folder: Path, store: Path) -> Path:
    """A clone of the git remote `origin` with the shared DVC remote `store` as its default (local config)."""
    run(origin.parent, "git", "clone", "-q", str(origin), str(folder))
    for key, value in (("user.name", "e2e"), ("user.email", "e2e@example.com")):
        run(folder, "git", "config", key, value)
    dvc(folder, "remote", "add", "--local", "-d", "store", str(store))
    return folder


def shared_study(url: str):
    """The team's study, opened as a worker does (a running trial is left to the heartbeat)."""
    return Study(MODEL, url, "val_loss", "none", Sharing(), STUDY).open()


def start_worker(root: Path, url: str) -> subprocess.Popen:
    """`pipeline tune` in `root` as one worker of the team's study."""
    command = [
        sys.executable, "-m", "pipeline", "tune", MODEL, "--storage", url, "--study", STUDY, "--trials", str(TRIALS),
        "--seeds", "0", "--pruner", "none", "--space", str(root.parent / "space.yaml"), "--push", "--heartbeat", "2",
    ]
    return subprocess.Popen(command, cwd=root, env=command_env(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> dict:
    """Two clones tuned side by side against one study: the clones, the git remote, the workers' outputs."""
    base = tmp_path_factory.mktemp("team")
    root = committed_copy(base / "repo", tiny_raw(**{f"models.{MODEL}.epochs": 1, f"models.{MODEL}.lr": LRS[0]}))
    (base / "space.yaml").write_text(f"models.{MODEL}.lr: {{choices: {list(LRS)}}}\n")
    origin = base / "origin.git"
    run(base, "git", "clone", "-q", "--bare", str(root), str(origin))
    clones = [clone(origin, base / name, base / "dvc-store") for name in ("a", "b")]
    workers = [start_worker(folder, postgres_url) for folder in clones]
    outputs = [worker.communicate(timeout=900)[0] for worker in workers]
    for worker, output in zip(workers, outputs):
        assert worker.returncode == 0, output
    return {"clones": clones, "origin": origin, "url": postgres_url}


def test_every_trial_ran_once_and_its_experiment_reached_the_git_remote(team):
    trials = shared_study(team["url"]).get_trials()
    assert [trial.state.name for trial in trials] == ["COMPLETE"] * TRIALS
    refs = run(team["origin"], "git", "for-each-ref", "--format=%(refname)", "refs/exps/")
    assert sorted(ref.rsplit("/", 1)[1] for ref in refs.split()) == [f"{STUDY}-{n}" for n in range(TRIALS)]


def test_the_best_is_the_same_whoever_asks_and_any_clone_can_pull_it(team):
    best = shared_study(team["url"]).best_trial.number
    folders = [root / "reports" / "tune" / MODEL for root in team["clones"]]
    summaries = [json.loads((folder / "summary.json").read_text()) for folder in folders]
    assert [summary["best"]["number"] for summary in summaries] == [best, best]
    for root in team["clones"]:
        dvc(root, "exp", "pull", "origin", f"{STUDY}-{best}")
        assert f"{STUDY}-{best}" in dvc(root, "exp", "list", "--name-only")
