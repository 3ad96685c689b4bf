"""`pipeline warm COMMAND...` (what `make repro` runs: `pipeline warm dvc repro`): COMMAND with a warm server beside
it, so that each stage process DVC starts skips the seconds of importing torch and the other heavy libraries.

The server (`python -m pipeline.cli.warm_server SOCKET`, in a session of its own) imports `PRELOAD` once, then
listens on a Unix socket (a stage that starts before, in the first seconds, runs cold). COMMAND runs with a folder
first on its PATH that holds a `python` shim (`pipeline.cli.warm_handoff`): DVC runs each stage's
`python -m pipeline.stages.<stage> ...` through a shell with the PATH it has itself, so the shim gets it and hands it
to the server. For each stage the server forks a child that takes the stage process's standard streams, working
folder, environment, `sys.path` and arguments, drops every `pipeline` module the server had imported (the project's
code is read afresh from the stage's folder, as a cold start would, so editing it between stages is seen), and runs
the module as `__main__`. The child's exit status goes back to the stage process.

A stage runs cold instead (same code, same results: the shim execs the real interpreter) when no server runs, when
the server refuses it (another interpreter, other interpreter flags, or an environment that differs beyond the
variables DVC and the shell set per stage: threads, devices and library settings are read at import), and on a
machine with a GPU (a process that has touched the CUDA driver cannot hand it to forked children, and importing
torch's compiler may touch it): there COMMAND runs with neither server nor shim.
"""
import contextlib
import ctypes
import importlib
import io
import json
import os
import runpy
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pipeline.cli.warm_handoff import SOCKET_ENV, write_shim
from pipeline.core.stage_times import STAGE_PROCESS_ENV

# The third-party modules the stages import (measured with `python -X importtime`, and the modules new in
# sys.modules after a stage's work), heaviest first. Only libraries: the project's own modules are never kept across
# commands. onnxruntime is left out: importing it starts a thread, and a process is forked from this one.
PRELOAD = (
    "torch",
    "torchvision",
    "torch.export",
    "torch._dynamo",
    "torch.onnx",
    "onnxscript",
    "onnxscript.function_libs.torch_lib.ops",  # the exporter's ATen-to-ONNX functions, built at import
    "torch.onnx._internal.exporter._core",
    "torch._functorch.aot_autograd",
    "torch._inductor.decomposition",  # torch.export's and the ONNX exporter's decompositions
    "networkx",
    "onnx",
    "sklearn.metrics",
    "sklearn.neighbors",
    "sklearn.datasets",
    "scipy.stats",
    "pandas",
    "matplotlib.pyplot",
    "dvclive",
    "dvc.repo",  # DVCLive opens the repository (and git, through scmrepo and dulwich)
    "scmrepo.git",
    "dulwich.porcelain",
    "numpy",
    "PIL.Image",
    "typer",
    "pydantic",
    "ruamel.yaml",
    "psutil",
    "rich",
    "tqdm",
)
# What DVC and the shell set per command: these may differ between the server and a command it runs.
PER_COMMAND_PREFIX = "DVC_"
PER_COMMAND = frozenset({"PWD", "OLDPWD", "SHLVL", "_", "PS1", "COLUMNS", "LINES", SOCKET_ENV})
GPU_DEVICES = ("/dev/nvidiactl", "/dev/kfd")
POLL_S = 0.02
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
PR_SET_PDEATHSIG = 1


def run_warm(command: list[str], wait: bool = False) -> int:
    """Run `command` with a warm server for its stages; its exit status. The command starts at once, and the stages
    that start while the server still imports run cold; with `wait`, it starts once the server serves."""
    with serving(wait=wait) as env:
        return subprocess.run(command, env=env, check=False).returncode


@contextlib.contextmanager
def serving(
    preload: tuple[str, ...] = PRELOAD, wait: bool = False, base: Mapping[str, str] | None = None
) -> Iterator[dict[str, str]]:
    """A warm server, importing `preload`, for the duration: the environment for the commands it serves (`base`,
    this process's environment by default), with the `python` shim's folder first on PATH and the server's socket
    (which exists once its imports are done; with `wait`: exists) in `SOCKET_ENV`. `base` as it is where no server
    serves: on a machine with a GPU, or (with `wait`) when the server ended before serving."""
    base = dict(os.environ if base is None else base)
    if any(Path(device).exists() for device in GPU_DEVICES):
        yield base
        return
    with tempfile.TemporaryDirectory(prefix="pipeline-warm-") as folder:
        shim_folder, path = Path(folder) / "bin", str(Path(folder) / "socket")
        shim_folder.mkdir()
        write_shim(str(shim_folder))
        env = {**base, "PATH": f"{shim_folder}{os.pathsep}{base.get('PATH', '')}", SOCKET_ENV: path}
        server = subprocess.Popen(  # from the folder above this package: a `pipeline` in the command's is another
            [sys.executable, "-m", __name__, path, *preload], stdin=subprocess.DEVNULL, env=env, cwd=PACKAGE_ROOT
        )
        try:
            yield env if not wait or _serving(server, Path(path)) else base
        finally:
            server.terminate()
            server.wait()


def _serving(server: subprocess.Popen, path: Path) -> bool:
    """Wait until the server's socket exists (its imports are done); False if the server ended first."""
    while not path.exists():
        if server.poll() is not None:
            return False
        time.sleep(POLL_S)
    return True


class Server:
    """The accept loop: a child per command, its exit status sent back, a child whose command went away ended."""

    def __init__(self, listener: socket.socket, started: dict[str, str]) -> None:
        self.listener, self.started = listener, started
        self.imports_set = {name: value for name, value in os.environ.items() if started.get(name) != value}
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ)
        self.children: dict[int, socket.socket] = {}
        self.parent = os.getppid()

    def serve(self) -> None:
        """Serve until the process that started the server ends or sends SIGTERM."""
        while os.getppid() == self.parent:
            for key, _ in self.selector.select(POLL_S):
                if key.fileobj is self.listener:
                    self._accept()
                else:
                    self._command_gone(key.fileobj)
            self._reap()

    def stop(self) -> None:
        """End every child still running (their commands are ending too)."""
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def _accept(self) -> None:
        connection, _ = self.listener.accept()
        try:
            asked, fds = _read_request(connection)
        except (OSError, ValueError):
            connection.close()
            return
        try:
            refusal = refused(asked, self.started)
            pid = -1 if refusal else os.fork()
        except OSError as exc:  # no room for another process: the command runs cold
            refusal, pid = f"the server could not fork: {exc}", -1
        if pid == 0:
            self._become(asked, fds)
        for fd in fds:
            os.close(fd)
        if refusal:
            _send(connection, {"refused": refusal})
            connection.close()
            return
        self.children[pid] = connection
        self.selector.register(connection, selectors.EVENT_READ)
        _send(connection, {"pid": pid})

    def _become(self, asked: dict[str, Any], fds: list[int]) -> None:
        """In the child: close the server's sockets and run the command (never returns)."""
        self.selector.close()
        self.listener.close()
        for connection in self.children.values():
            connection.close()
        status = run_command(asked, fds, self.imports_set)
        os._exit(status)

    def _command_gone(self, connection: Any) -> None:
        """A command's process closed its end (it was killed): end its child."""
        for pid, known in self.children.items():
            if known is connection:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
                self.selector.unregister(connection)

    def _reap(self) -> None:
        """Send each child that has ended its exit status."""
        while self.children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return
            connection = self.children.pop(pid)
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(connection)
            _send(connection, {"exit": os.waitstatus_to_exitcode(status)})
            connection.close()


def _send(connection: socket.socket, message: dict[str, Any]) -> None:
    """One JSON line to a command (gone already: its child is ended when its end of the socket closes)."""
    with contextlib.suppress(OSError):
        connection.sendall(json.dumps(message).encode() + b"\n")


def _read_request(connection: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """The command's request (one JSON line) and its standard streams' descriptors."""
    data, fds, _, _ = socket.recv_fds(connection, 1 << 16, 3)
    while not data.endswith(b"\n"):
        more = connection.recv(1 << 16)
        if not more:
            raise ValueError("the request ended early")
        data += more
    if len(fds) != 3:
        raise ValueError("the request did not pass its standard streams")
    return json.loads(data), fds


def refused(asked: dict[str, Any], started: dict[str, str]) -> str:
    """Why this server cannot run the command as a cold start would ("" when it can); `started`: the server's
    environment before its imports."""
    if asked.get("executable") != sys.executable or asked.get("flags") != list(sys.flags):
        return "another Python interpreter or other interpreter flags"
    env = asked.get("env", {})
    differing = sorted(
        name
        for name in set(env) | set(started)
        if env.get(name) != started.get(name) and not name.startswith(PER_COMMAND_PREFIX) and name not in PER_COMMAND
    )
    return f"environment variables differ: {', '.join(differing)}" if differing else ""


def exit_status(exit_: SystemExit) -> int:
    """The status a process ends with on `exit_`: its code, 0 for None, else 1 with a text code printed to stderr."""
    if isinstance(exit_.code, str):
        print(exit_.code, file=sys.stderr)
    return exit_.code if isinstance(exit_.code, int) else 0 if exit_.code is None else 1


def run_command(asked: dict[str, Any], fds: list[int], imports_set: dict[str, str]) -> int:
    """Become the command's process and run its module as `__main__`; its exit status. `imports_set`: variables
    the preloaded libraries set in the environment when imported (scikit-learn's KMP_*), kept as they set them."""
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGCHLD):
        signal.signal(number, signal.default_int_handler if number == signal.SIGINT else signal.SIG_DFL)
    _end_with_server()
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(asked["cwd"])
    os.environ.clear()
    os.environ.update({name: value for name, value in asked["env"].items() if name != SOCKET_ENV})
    os.environ.update(imports_set)
    os.environ[STAGE_PROCESS_ENV] = str(asked["pid"])
    sys.path[:] = asked["path"]
    sys.argv = [asked["module"], *asked["argv"]]
    _fresh_streams()
    for name in [name for name in sys.modules if name == "pipeline" or name.startswith("pipeline.")]:
        del sys.modules[name]
    importlib.invalidate_caches()
    try:
        runpy.run_module(asked["module"], run_name="__main__", alter_sys=True)
        status = 0
    except SystemExit as exit_:
        status = exit_status(exit_)
    except BaseException:  # an uncaught error, as a cold process would show it
        import traceback

        traceback.print_exc()
        status = 1
    sys.stdout.flush()
    sys.stderr.flush()
    return status


def _fresh_streams() -> None:
    """sys.stdin, stdout and stderr on the command's descriptors, buffered as a cold start would buffer them."""
    unbuffered = bool(os.environ.get("PYTHONUNBUFFERED"))
    for fd, name, mode in ((0, "stdin", "rb"), (1, "stdout", "wb"), (2, "stderr", "wb")):
        raw = io.FileIO(fd, mode, closefd=False)
        interactive = os.isatty(fd)
        if mode == "rb":
            setattr(sys, name, io.TextIOWrapper(io.BufferedReader(raw), encoding="utf-8"))
            continue
        buffered = io.BufferedWriter(raw)
        stream = io.TextIOWrapper(
            buffered, encoding="utf-8", errors="backslashreplace" if fd == 2 else "strict",
            line_buffering=interactive or fd == 2, write_through=unbuffered,
        )
        setattr(sys, name, stream)


def _end_with_server() -> None:
    """Linux: the child gets SIGTERM when the server ends, rather than running on unwatched."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def main(path: str, preload: list[str]) -> None:
    """The server process: its own session (the terminal's Ctrl-C reaches the commands, which pass it on), the
    imports, then the accept loop until its parent ends or it gets SIGTERM."""
    os.setsid()
    started = dict(os.environ)
    for module in preload:
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)  # commands find the socket from now on (before, they run cold)
    listener.listen(128)
    server = Server(listener, started)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve()
    finally:
        server.stop()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
