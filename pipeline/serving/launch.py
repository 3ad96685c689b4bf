"""`pipeline serve` (or another `pipeline` command that serves, such as `pipeline audit review NAME --web`) started
as a process of its own on a free port of 127.0.0.1, ready once `GET /health` answers, and stopped when done: for the
bench, and for tests that talk HTTP to the real server."""

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import psutil

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


@dataclass(frozen=True)
class Served:
    """A server started by `server_process`: its base URL, its process, and what it has printed so far (`said`)."""

    url: str
    process: subprocess.Popen
    output: IO[bytes]

    def said(self) -> str:
        """Everything the server has printed, stdout and stderr together."""
        return _said(self.output)


@contextmanager
def server_process(model: str | Path, *options: str, cwd: Path | None = None, env: dict[str, str] | None = None,
                   timeout: float = READY_TIMEOUT) -> Iterator[Served]:
    """`python -m pipeline serve MODEL OPTIONS` as `pipeline_server` runs it."""
    with pipeline_server("serve", str(model), *options, cwd=cwd, env=env, timeout=timeout) as served:
        yield served


@contextmanager
def pipeline_server(*arguments: str, cwd: Path | None = None, env: dict[str, str] | None = None,
                    timeout: float = READY_TIMEOUT) -> Iterator[Served]:
    """`python -m pipeline ARGUMENTS --host 127.0.0.1 --port PORT` on a free port, run with this process's
    `pipeline` package and `env` added to its environment; yields it once it answers `/health`, and stops it on
    leaving (SIGTERM, then SIGKILL after `STOP_TIMEOUT` s) if it still runs. A server that exits or does not answer
    within `timeout` seconds is a PipelineError with its output."""
    port = free_port()
    command = [sys.executable, "-m", "pipeline", *arguments, "--host", HOST, "--port", str(port)]
    package_root = str(Path(pipeline.__file__).resolve().parents[1])
    python_path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(command, cwd=cwd, env={**os.environ, **(env or {}), "PYTHONPATH": python_path},
                                   stdout=output, stderr=subprocess.STDOUT)
        try:
            url = f"http://{HOST}:{port}"
            _wait_until_ready(url, port, process, output, timeout)
            yield Served(url, process, output)
        finally:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def running_server(model: str | Path, *options: str, cwd: Path | None = None,
                   timeout: float = READY_TIMEOUT) -> Iterator[str]:
    """The base URL of `server_process(model, *options)`, for clients that need nothing else of it."""
    with server_process(model, *options, cwd=cwd, timeout=timeout) as served:
        yield served.url


def _wait_until_ready(url: str, port: int, process: subprocess.Popen, output, timeout: float) -> None:
    """Return once `process` itself listens on `port` (the URL's) and `/health` answers there: a port found free can
    be taken by another program before the server binds it, and that program's answer is not this server's."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise PipelineError(f"the server exited ({process.returncode}) before it was ready: {_said(output)}")
        try:
            if _listens(process.pid, port) and httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return
        except (httpx.TransportError, psutil.Error):
            pass
        time.sleep(0.1)
    raise PipelineError(f"the server did not answer {url}/health within {timeout:.0f} s: {_said(output)}")


def _listens(pid: int, port: int) -> bool:
    """Whether process `pid` has a TCP socket listening on `port` of 127.0.0.1."""
    return any(
        connection.status == psutil.CONN_LISTEN and connection.laddr.port == port
        for connection in psutil.Process(pid).net_connections(kind="tcp")
    )


def _said(output) -> str:
    output.seek(0)
    return output.read().decode(errors="replace").strip() or "(no output)"
