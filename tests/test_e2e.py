"""End to end: `dvc repro` in a temporary copy of the repository, with tiny params, as a user runs it."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, tiny_raw

GIT_ENV = {"GIT_AUTHOR_NAME": "e2e", "GIT_AUTHOR_EMAIL": "e2e@example.com"}


def _run(cwd: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def _dvc(cwd: Path, *args: str) -> str:
    return _run(cwd, sys.executable, "-m", "dvc", *args)


def _copy_repo(target: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file() and name != "dvc.lock":
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A committed copy of the repo with tiny params, after one `dvc repro`."""
    root = tmp_path_factory.mktemp("repo")
    _copy_repo(root)
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_raw(), sort_keys=False))
    for command in (["init", "-q"], ["config", "user.name", "e2e"], ["config", "user.email", "e2e@example.com"]):
        _run(root, "git", *command)
    _run(root, "git", "add", "-A")
    _run(root, "git", "commit", "-qm", "tiny params")
    _dvc(root, "repro")
    _run(root, "git", "add", "-A")
    _run(root, "git", "commit", "-qm", "first run")
    return root


def test_repro_writes_test_metrics_for_the_model(workspace: Path) -> None:
    metrics = json.loads((workspace / "metrics/catsdogs_cnn/test.json").read_text())
    assert 0 <= metrics["accuracy"] <= 1
    assert metrics["loss"] > 0
    assert metrics["samples"] == 6


def test_metrics_show_lists_split_train_and_test_metrics(workspace: Path) -> None:
    shown = json.loads(_dvc(workspace, "metrics", "show", "--json"))
    files = next(iter(shown.values()))["data"]
    assert {"metrics/catsdogs/split.json", "metrics/catsdogs_cnn/test.json"} <= set(files)
    assert "accuracy" in files["metrics/catsdogs_cnn/test.json"]["data"]
    assert files["metrics/catsdogs_cnn/train/metrics.json"]["data"]["step"] == 2


def test_second_repro_has_nothing_to_do(workspace: Path) -> None:
    output = _dvc(workspace, "repro")
    assert "Running stage" not in output
    assert "up to date" in _dvc(workspace, "status")


def test_aug_change_reruns_only_train_and_evaluate(workspace: Path) -> None:
    output = _dvc(workspace, "exp", "run", "-S", "aug.rotation=20")
    ran = {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}
    assert ran == {"train@catsdogs_cnn", "evaluate@catsdogs_cnn"}
    experiments = json.loads(_dvc(workspace, "exp", "show", "--json"))
    rotations = {
        run["data"]["params"]["params.yaml"]["data"]["aug"]["rotation"]
        for baseline in experiments
        for run in [baseline, *(exp for group in baseline.get("experiments") or [] for exp in group["revs"])]
        if run.get("data")
    }
    assert {0, 20} <= rotations
