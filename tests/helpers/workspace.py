"""A committed copy of the repository in a temporary folder, run with the real `dvc` and `git` as a user runs them."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from dvc.repo import Repo
from tests.helpers.params import REPO


GIT_ENV = {"GIT_AUTHOR_NAME": "e2e", "GIT_AUTHOR_EMAIL": "e2e@example.com", "DVC_STUDIO_OFFLINE": "true"}


def run(cwd: Path, *args: str, timeout: int = 600, env: dict[str, str] | None = None) -> str:
    """Run a command with this environment's tools first on PATH (in `env` instead of this process's environment
    when given); its stdout and stderr, or a failed assertion."""
    result = attempt(cwd, *args, timeout=timeout, env=env)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def attempt(
    cwd: Path, *args: str, timeout: int = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command as `run` does, whatever its exit status; the finished process, output captured."""
    base = os.environ if env is None else env
    env = {**base, **GIT_ENV, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{base['PATH']}"}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def dvc(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run `dvc` in `cwd`."""
    return run(cwd, sys.executable, "-m", "dvc", *args, env=env)


def wait_for_queue(root: Path, env: dict[str, str] | None = None, timeout_s: float = 480) -> str:
    """Wait until `dvc queue` has no queued or running experiment (at most `timeout_s`); its last status."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = dvc(root, "queue", "status", env=env)
        if not any(word in status for word in ("Queued", "Running")):
            return status
        time.sleep(2)
    pytest.fail(f"the queue did not finish within {timeout_s} s:\n{status}")


def stages_run(output: str) -> set[str]:
    """The stages a `dvc repro` / `dvc exp run` output says it ran."""
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


def committed_copy(root: Path, params: dict[str, Any]) -> Path:
    """Copy the repository's files to `root` with `params`, in a new git repository, committed."""
    _copy_repo(root)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for command in (["init", "-q"], ["config", "user.name", "e2e"], ["config", "user.email", "e2e@example.com"]):
        run(root, "git", *command)
    run(root, "git", "add", "-A")
    run(root, "git", "commit", "-qm", "params")
    return root


def committed_repro(root: Path, params: dict[str, Any], *targets: str, warm: bool = False) -> Path:
    """`committed_copy`, then `dvc repro` (of `targets`, default all; with `warm`, as `make repro` runs it: under
    `pipeline warm`, each stage run by its server), and commit the results."""
    committed_copy(root, params)
    if warm:
        run(root, "pipeline", "warm", "--wait", sys.executable, "-m", "dvc", "repro", *targets)
    else:
        dvc(root, "repro", *targets)
    run(root, "git", "add", "-A")
    run(root, "git", "commit", "-qm", "first run")
    return root


def locked_copy(root: Path) -> Path:
    """Copy the repository's files to `root` and lock every stage as if it had run, without running any: each
    output is a placeholder file, and `dvc commit` records it with the stage's deps and params as they are. Then
    `dvc status` names exactly the stages whose code deps, params or inputs a later edit changes."""
    _copy_repo(root)
    run(root, "git", "init", "-q")
    with Repo(str(root)) as repo:
        outputs = [Path(out.fs_path) for stage in repo.index.stages for out in stage.outs]
    for output in outputs:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text("placeholder\n")
    dvc(root, "commit", "--force", "--quiet")
    return root


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
