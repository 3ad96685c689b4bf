"""A committed copy of the repository in a temporary folder, run with the real `dvc` and `git` as a user runs them."""

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from dvc.repo import Repo

from pipeline.cli.warm_handoff import SOCKET_ENV
from pipeline.cli.warm_server import serving
from tests.helpers.params import REPO


GIT_ENV = {"GIT_AUTHOR_NAME": "e2e", "GIT_AUTHOR_EMAIL": "e2e@example.com", "DVC_STUDIO_OFFLINE": "true"}
HUB_CACHE = "HF_HUB_CACHE"
_WARM = contextlib.ExitStack()
_WARM_ENV: dict[str, str] = {}


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
    env = command_env(os.environ if env is None else env)
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def command_env(base: Mapping[str, str]) -> dict[str, str]:
    """`base` as the tests' commands run with it: the commit author set, this environment's tools first on PATH,
    and no PYTEST_CURRENT_TEST (which names the test: a command's environment is the same whichever test runs it).
    A `warm_env()` is one already, kept as it is (its shim stays first on PATH)."""
    if SOCKET_ENV in base:
        return dict(base)
    env = {**base, **GIT_ENV, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{base['PATH']}"}
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


def dvc(cwd: Path, *args: str, env: dict[str, str] | None = None, warm: bool = True) -> str:
    """Run `dvc` in `cwd`: with `env` as given, else with `warm_env()` (each stage run by the warm server, as
    `make repro` runs them), or cold with `warm` False."""
    return run(cwd, sys.executable, "-m", "dvc", *args, env=env if env is not None or not warm else warm_env())


def warm_env() -> dict[str, str]:
    """The environment of the tests' `dvc` commands: `command_env`, the Hub offline with its cache in a folder of
    its own (`HUB_CACHE`: a test puts a Hub dataset there), and the shim that hands each stage to a warm server.
    One server per test process, started by the first command (the stages wait for its imports: each runs warm)
    and stopped by `stop_warm_server`; on a machine with a GPU there is none, and stages run cold."""
    if not _WARM_ENV:
        hub = _WARM.enter_context(tempfile.TemporaryDirectory(prefix="hub-cache-"))
        base = {**command_env(os.environ), "HF_HUB_OFFLINE": "1", HUB_CACHE: hub}
        _WARM_ENV.update(_WARM.enter_context(serving(wait=True, base=base)))
    return _WARM_ENV


def stop_warm_server() -> None:
    """End the warm server of `warm_env` (if one started) and remove its Hub cache."""
    _WARM.close()
    _WARM_ENV.clear()


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


def committed_repro(root: Path, params: dict[str, Any], *targets: str) -> Path:
    """`committed_copy`, then `dvc repro` (of `targets`, default all), and commit the results."""
    committed_copy(root, params)
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
