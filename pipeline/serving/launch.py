"""`pipeline serve` started as a process of its own on a free port of 127.0.0.1, ready once `GET /health` answers,
and stopped when done: for the bench, and for tests that talk HTTP to the real server."""

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

import pipeline
from pipeline.core.errors import PipelineError

HOST = "127.0.0.1"
READY_TIMEOUT = 60.0  # seconds: importing torch and loading the model take a few on a busy machine
STOP_TIMEOUT = 10.0


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@contextmanager
def running_server(model: str | Path, *options: str, cwd: Path | None = None,
                   timeout: float = READY_TIMEOUT) -> Iterator[str]:
    """`python -m pipeline serve MODEL OPTIONS` on a free port, run with this process's `pipeline` package; yields
    its base URL once it answers `/health`, and terminates it on leaving. A server that exits or does not answer
    within `timeout` seconds is a PipelineError with its output."""
    port = free_port()
    command = [sys.executable, "-m", "pipeline", "serve", str(model), "--host", HOST, "--port", str(port), *options]
    package_root = str(Path(pipeline.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT)
        try:
            url = f"http://{HOST}:{port}"
            _wait_until_ready(url, process, output, timeout)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_ready(url: str, process: subprocess.Popen, output, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise PipelineError(f"the server exited ({process.returncode}) before it was ready: {_said(output)}")
        try:
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise PipelineError(f"the server did not answer {url}/health within {timeout:.0f} s: {_said(output)}")


def _said(output) -> str:
    output.seek(0)
    return output.read().decode(errors="replace").strip() or "(no output)"
