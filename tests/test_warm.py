"""`pipeline warm`: a stage (`python -m pipeline.stages.<stage>`, through the `python` shim first on the command's
PATH) handed to the warm server runs in a forked child as it would have run cold (its arguments, folder, environment,
`sys.path`, `sys.flags`, streams and exit status; signals passed on), and runs cold, in the real interpreter, when
the server cannot take it. A probe module in a `pipeline/stages/` of its own folder stands in for the stages; the
server imports nothing heavy here."""

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

from pipeline.cli.warm_handoff import SOCKET_ENV
from pipeline.cli.warm_server import serving

PROBE = """\
import json, os, sys, time
import pipeline
print(json.dumps({
    "pid": os.getpid(), "argv": sys.argv[1:], "cwd": os.getcwd(), "marker": os.environ.get("WARM_MARKER"),
    "stage_process": os.environ.get("PIPELINE_STAGE_PROCESS"), "package": pipeline.__file__,
    "path": sys.path, "flags": list(sys.flags), "executable": sys.executable,
    "project_modules": sorted(name for name in sys.modules if name.split(".")[0] == "pipeline"),
}), flush=True)
if sys.argv[1] == "sleep":
    time.sleep(60)
if sys.argv[1] == "raise":
    raise RuntimeError("the probe failed")
sys.exit(int(sys.argv[2]))
"""
STAGE = "pipeline.stages.probe"


@contextmanager
def warm_server() -> Iterator[dict[str, str]]:
    """A server importing nothing heavy, for the body of a test: the environment `pipeline warm` gives its command
    (the shim first on PATH; the server's environment is the test's, as the command's)."""
    with serving(preload=("json",), wait=True) as env:
        if SOCKET_ENV not in env:
            pytest.skip("no warm server on a machine with a GPU")
        yield env


def with_probe(folder: Path) -> Path:
    """`folder` with a `pipeline` package of its own whose `stages.probe` is the probe."""
    (folder / "pipeline" / "stages").mkdir(parents=True, exist_ok=True)
    (folder / "pipeline" / "__init__.py").write_text("")
    (folder / "pipeline" / "stages" / "__init__.py").write_text("")
    (folder / "pipeline" / "stages" / "probe.py").write_text(PROBE)
    return folder


def stage(folder: Path, env: dict[str, str], *args: str, python: str = "python", **extra_env: str) -> subprocess.Popen:
    """`python -m pipeline.stages.probe ARGS` in `folder`, `python` found on the PATH of `env`, as DVC runs a stage."""
    with_probe(folder)
    return subprocess.Popen(
        [python, "-m", STAGE, *args], cwd=folder, env={**env, **extra_env}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )


@pytest.fixture(autouse=True)
def interpreter_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """This interpreter's folder first on PATH, as `uv run` has it, before any server starts: `python` is this one."""
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


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


def test_a_stage_runs_in_a_warm_child_as_it_would_cold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARM_MARKER", "set before the server started")
    cold_process = stage(tmp_path, dict(os.environ), "print", "3")
    cold = probed(cold_process)
    assert cold_process.wait(timeout=30) == 3
    with warm_server() as env:
        process = stage(tmp_path, env, "print", "3")
        seen = probed(process)
        assert process.wait(timeout=30) == 3
    assert seen["pid"] != process.pid and seen["stage_process"] == str(process.pid)  # a child of the server ran it
    assert seen["argv"] == ["print", "3"] and seen["cwd"] == str(tmp_path)
    assert seen["marker"] == "set before the server started"
    # the server's own project modules dropped: the code is read afresh, from the stage's folder
    assert seen["package"] == str(tmp_path / "pipeline" / "__init__.py")
    assert seen["project_modules"] == cold["project_modules"] == ["pipeline", "pipeline.stages"]
    assert (seen["path"], seen["flags"], seen["executable"]) == (cold["path"], cold["flags"], cold["executable"])
    assert seen["path"][0] == str(tmp_path) and seen["executable"] == sys.executable


def test_anything_but_a_stage_runs_in_the_real_interpreter_in_the_same_process(tmp_path: Path) -> None:
    with warm_server() as env:
        code = "import json, os, sys; print(json.dumps([os.getpid(), sys.executable, sys.argv, sys.path[0]]))"
        process = subprocess.Popen(
            ["python", "-c", code, "an", "argument"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True
        )
        pid, executable, argv, first = json.loads(process.stdout.readline())
        assert process.wait(timeout=30) == 0
        assert (Path(env["PATH"].split(os.pathsep)[0]) / "python").is_file()  # the shim
    assert (pid, executable, argv, first) == (process.pid, sys.executable, ["-c", "an", "argument"], "")


def test_a_stage_under_interpreter_options_runs_cold(tmp_path: Path) -> None:
    with warm_server() as env:
        process = stage(tmp_path, env, "print", "5")
        process.wait(timeout=30)
        options = subprocess.Popen(
            ["python", "-u", "-m", STAGE, "print", "5"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
            text=True,
        )
        seen = probed(options)
        assert options.wait(timeout=30) == 5
    assert seen["pid"] == options.pid and seen["stage_process"] is None


def test_an_uncaught_error_shows_its_traceback_and_the_status_is_1(tmp_path: Path) -> None:
    with warm_server() as env:
        process = stage(tmp_path, env, "raise")
        seen = probed(process)
        _, errors = process.communicate(timeout=30)
    assert seen["stage_process"] == str(process.pid)
    assert process.returncode == 1 and "RuntimeError: the probe failed" in errors and "Traceback" in errors


def test_a_stage_whose_environment_differs_from_the_servers_runs_cold(tmp_path: Path) -> None:
    with warm_server() as env:
        process = stage(tmp_path, env, "print", "0", WARM_OTHER="set for the stage alone")
        seen = probed(process)
        assert process.wait(timeout=30) == 0
    assert seen["pid"] == process.pid and seen["stage_process"] is None


def test_without_a_server_the_stage_runs_cold(tmp_path: Path) -> None:
    with warm_server() as env:
        pass
    process = stage(tmp_path, {**env, SOCKET_ENV: str(tmp_path / "no-server")}, "print", "4")
    seen = probed(process)
    assert process.wait(timeout=30) == 4 and seen["pid"] == process.pid


def test_a_signal_to_the_stage_is_passed_to_its_child(tmp_path: Path) -> None:
    with warm_server() as env:
        process = stage(tmp_path, env, "sleep")
        child = probed(process)["pid"]
        assert child != process.pid
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == -signal.SIGTERM
        assert gone(child)


def test_a_killed_stage_has_its_child_ended_by_the_server(tmp_path: Path) -> None:
    with warm_server() as env:
        process = stage(tmp_path, env, "sleep")
        child = probed(process)["pid"]
        assert child != process.pid
        process.kill()
        process.wait(timeout=30)
        assert gone(child)


def test_pipeline_warm_dvc_repro_runs_its_stages_warm(tmp_path: Path) -> None:
    """DVC runs a stage's cmd through a shell with its own PATH: the shim first on it hands the stage over."""
    if any(Path(device).exists() for device in ("/dev/nvidiactl", "/dev/kfd")):
        pytest.skip("no warm server on a machine with a GPU")
    with_probe(tmp_path)
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  probe:\n    cmd: python -m pipeline.stages.probe print 0 > seen.json\n    outs:\n      - seen.json\n"
    )
    env = {**dict(os.environ), "DVC_NO_ANALYTICS": "1", "DVC_STUDIO_OFFLINE": "true"}
    for command in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(command, cwd=tmp_path, env=env, check=True)
    warm = [str(Path(sys.executable).parent / "pipeline"), "warm", "--wait", sys.executable, "-m", "dvc", "repro"]
    done = subprocess.run(warm, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen["stage_process"] is not None and seen["pid"] != int(seen["stage_process"])
    assert seen["package"] == str(tmp_path / "pipeline" / "__init__.py")
