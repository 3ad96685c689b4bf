"""`pipeline warm`: a command handed to the warm server runs in a forked child as it would have run cold (its
arguments, folder, environment, streams and exit status; signals passed on), and runs cold when the server cannot
take it. A probe module stands in for the stage commands; the server imports nothing heavy here."""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pipeline.cli.run_stage import SOCKET_ENV
from pipeline.cli.warm_server import serving

PROBE = """\
import json, os, sys, time
print(json.dumps({
    "pid": os.getpid(), "argv": sys.argv[1:], "cwd": os.getcwd(), "marker": os.environ.get("WARM_MARKER"),
    "stage_process": os.environ.get("PIPELINE_STAGE_PROCESS"),
    "project_modules": sorted(name for name in sys.modules if name.split(".")[0] == "pipeline"),
}), flush=True)
if sys.argv[1] == "sleep":
    time.sleep(60)
if sys.argv[1] == "raise":
    raise RuntimeError("the probe failed")
sys.exit(int(sys.argv[2]))
"""
# The client as dvc.yaml's command is one: hand the probe to the server, or run it here when none takes it.
CLIENT = (
    "from pipeline.cli.run_stage import hand_over; hand_over('probe'); "
    "import runpy; runpy.run_module('probe', run_name='__main__')"
)


@contextmanager
def warm_server() -> Iterator[str]:
    """A server importing nothing heavy, for the body of a test (its environment is the test's, as the commands')."""
    with serving(preload=("json",), wait=True) as path:
        if path is None:
            pytest.skip("no warm server on a machine with a GPU")
        yield path


def client(folder: Path, socket_path: str, *args: str, **extra_env: str) -> subprocess.Popen:
    """The probe's command, started in `folder` with the server's socket in its environment."""
    (folder / "probe.py").write_text(PROBE)
    env = {**os.environ, SOCKET_ENV: socket_path, **extra_env}
    return subprocess.Popen(
        [sys.executable, "-c", CLIENT, *args], cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )


def probed(process: subprocess.Popen) -> dict:
    """The probe's first line of output."""
    return json.loads(process.stdout.readline())


def gone(pid: int, within_s: float = 10) -> bool:
    """Whether the process `pid` ends within `within_s`."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_a_command_runs_in_a_warm_child_as_it_would_cold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARM_MARKER", "set before the server started")
    with warm_server() as path:
        process = client(tmp_path, path, "print", "3")
        seen = probed(process)
        assert process.wait(timeout=30) == 3
    assert seen["pid"] != process.pid and seen["stage_process"] == str(process.pid)  # a child of the server ran it
    assert seen["argv"] == ["print", "3"] and seen["cwd"] == str(tmp_path)
    assert seen["marker"] == "set before the server started"
    assert seen["project_modules"] == []  # the server's own project modules dropped: the code is read afresh


def test_an_uncaught_error_shows_its_traceback_and_the_status_is_1(tmp_path: Path) -> None:
    with warm_server() as path:
        process = client(tmp_path, path, "raise")
        seen = probed(process)
        _, errors = process.communicate(timeout=30)
    assert seen["stage_process"] == str(process.pid)
    assert process.returncode == 1 and "RuntimeError: the probe failed" in errors and "Traceback" in errors


def test_a_command_whose_environment_differs_from_the_servers_runs_cold(tmp_path: Path) -> None:
    with warm_server() as path:
        process = client(tmp_path, path, "print", "0", WARM_OTHER="set for the command alone")
        seen = probed(process)
        assert process.wait(timeout=30) == 0
    assert seen["pid"] == process.pid and seen["stage_process"] is None


def test_without_a_server_the_command_runs_cold(tmp_path: Path) -> None:
    process = client(tmp_path, str(tmp_path / "no-server"), "print", "4")
    seen = probed(process)
    assert process.wait(timeout=30) == 4 and seen["pid"] == process.pid


def test_a_signal_to_the_command_is_passed_to_its_child(tmp_path: Path) -> None:
    with warm_server() as path:
        process = client(tmp_path, path, "sleep")
        child = probed(process)["pid"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == -signal.SIGTERM
        assert gone(child)


def test_a_killed_command_has_its_child_ended_by_the_server(tmp_path: Path) -> None:
    with warm_server() as path:
        process = client(tmp_path, path, "sleep")
        child = probed(process)["pid"]
        process.kill()
        process.wait(timeout=30)
        assert gone(child)
