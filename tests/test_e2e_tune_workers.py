"""End to end: `pipeline tune --workers 2` in a temporary copy of the repository: two worker processes, each in its
clone of the last commit, share the workspace's study; every trial is then an experiment of the workspace (`dvc
exp list`), and the summary holds each trial once."""

import json
import sys

import pytest

from tests.helpers.params import tiny_raw
from tests.helpers.workspace import committed_copy, dvc, run

pytestmark = pytest.mark.slow
MODEL = "catsdogs_cnn"
LRS = (0.001, 0.003)


def test_two_workers_share_the_study_and_their_experiments_come_back_to_the_workspace(tmp_path):
    root = committed_copy(tmp_path / "repo", tiny_raw(**{f"models.{MODEL}.epochs": 1, f"models.{MODEL}.lr": LRS[0]}))
    (tmp_path / "space.yaml").write_text(f"models.{MODEL}.lr: {{choices: {list(LRS)}}}\n")
    run(root, sys.executable, "-m", "pipeline", "tune", MODEL, "--workers", "2", "--trials", "2", "--seeds", "0",
        "--pruner", "none", "--space", str(tmp_path / "space.yaml"), timeout=900)
    summary = json.loads((root / "reports" / "tune" / MODEL / "summary.json").read_text())
    trials = sorted((trial["number"], trial["state"]) for trial in summary["trials"])
    assert trials == [(0, "COMPLETE"), (1, "COMPLETE")]
    listed = dvc(root, "exp", "list", "--name-only")
    assert {f"tune-{MODEL}-0", f"tune-{MODEL}-1"} <= set(listed.split())
    logs = sorted(path.name for path in (root / ".dvc" / "tmp" / "tune" / "workers").glob("*.log"))
    assert logs == ["0.log", "1.log"]
