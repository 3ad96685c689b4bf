"""The `python` that `pipeline warm` puts first on its command's PATH: `python -m pipeline.stages.<stage> ...` (what
dvc.yaml runs) handed to the warm server (`pipeline.cli.warm_server`), anything else the real interpreter.

A stage spends seconds importing torch, scikit-learn, matplotlib and torch.export before its work. The server has
imported them once; for each stage it forks a child that becomes this process (its working folder, environment,
arguments and standard streams, and the `sys.path` and `sys.flags` that `python -m` would have given it) and runs
the stage's module there, with the project's own modules imported fresh from the working folder. This process waits
for the child's exit status and passes on the signals it gets (DVC's Ctrl-C, a kill), so to DVC it is the stage.

Anything else, and a stage no server takes (none runs yet, it has gone, or it refuses another interpreter or
environment), is handed to the interpreter that `python` names on PATH after the shim with `os.execv`: the same
process, arguments and environment, so it runs exactly as it would have cold. Nothing here is imported but the
standard library, and the shim loads this file by its path: the point is to be cheap.
"""

import json
import os
import shlex
import shutil
import signal
import socket
import sys
from typing import Any, NoReturn

SOCKET_ENV = "PIPELINE_WARM_SOCKET"  # set by `pipeline warm` for the command it runs
HANDED_OVER = "pipeline.stages."  # `python -m` of a module under this prefix goes to the server
# The signals that end a stage, as this platform has them.
FORWARDED = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT") if hasattr(signal, name))
SHIM = '''\
#!{interpreter}
# `python` for the command `pipeline warm` runs: stages to its server, anything else to the real interpreter.
import importlib.util
spec = importlib.util.spec_from_file_location("pipeline_warm_handoff", {handoff!r})
handoff = importlib.util.module_from_spec(spec)
spec.loader.exec_module(handoff)
handoff.stand_in_for_python()
'''


def write_shim(folder: str) -> None:
    """Write `folder/python`, the shim: an executable script run by this interpreter that calls
    `stand_in_for_python` of this file."""
    path = os.path.join(folder, "python")
    with open(path, "w") as out:
        out.write(SHIM.format(interpreter=sys.executable, handoff=os.path.abspath(__file__)))
    os.chmod(path, 0o755)


def stand_in_for_python() -> NoReturn:
    """Be the `python` the command asked for: a stage handed to the warm server when one takes it, else (and for
    anything but a stage) the real interpreter, exec'd with the same arguments."""
    shim_folder = os.path.dirname(os.path.abspath(sys.argv[0]))
    arguments = sys.argv[1:]
    real = _real_python(shim_folder)
    if real is None:
        print("python: command not found", file=sys.stderr)
        os._exit(127)
    if len(arguments) >= 2 and arguments[0] == "-m" and arguments[1].startswith(HANDED_OVER):
        hand_over(request(arguments[1], arguments[2:], real))
    os.execv(real, [real, *arguments])


def request(module: str, argv: list[str], executable: str) -> dict[str, Any]:
    """What the server needs to become this process and run `python -m module ARGV` as `executable` would have:
    the same `sys.flags` (this script ran with no interpreter option) and `sys.path`, whose first entry is the
    working folder for `-m` (nothing with `-P`) where a script has its own folder."""
    path = [os.getcwd(), *sys.path[1:]] if not sys.flags.safe_path else list(sys.path)
    return {
        "module": module,
        "argv": argv,
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "path": path,
        "executable": executable,
        "flags": list(sys.flags),
        "pid": os.getpid(),
    }


def hand_over(asked: dict[str, Any]) -> None:
    """Run the `request` in a warm child and end this process with its status; return (having done nothing) when
    no warm server takes it."""
    path = os.environ.get(SOCKET_ENV)
    if not path:
        return
    try:
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.connect(path)
        socket.send_fds(connection, [json.dumps(asked).encode() + b"\n"], [0, 1, 2])
        replies = connection.makefile("r")
        answer = json.loads(replies.readline() or "{}")
    except (OSError, ValueError):
        return
    if "pid" not in answer:
        return  # refused (another environment or interpreter): run cold
    _forward_signals(answer["pid"])
    ended = replies.readline()
    status = json.loads(ended)["exit"] if ended else _server_gone(asked)
    if status < 0:  # the child died of a signal: so does this process
        signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
    os._exit(status)


def _real_python(shim_folder: str) -> str | None:
    """The interpreter `python` names on PATH after the shim's folder, as a cold start's `sys.executable` would
    name it (an absolute path); None when there is none."""
    entries = os.environ.get("PATH", "").split(os.pathsep)
    rest = [entry for entry in entries if os.path.abspath(entry or ".") != shim_folder]
    found = shutil.which("python", path=os.pathsep.join(rest))
    return os.path.abspath(found) if found else None


def _forward_signals(pid: int) -> None:
    """Pass the signals that end a stage on to the child that runs it."""

    def forward(number: int, _frame: Any) -> None:
        try:
            os.kill(pid, number)
        except ProcessLookupError:
            pass

    for number in FORWARDED:
        signal.signal(number, forward)


def _server_gone(asked: dict[str, Any]) -> int:
    """Say that the server ended mid-stage, naming the command to run again (as `pipeline.stages.command` names
    it: the stage's `dvc repro` under DVC, else the command as typed); the status to exit with."""
    stage = asked["env"].get("DVC_STAGE")
    command = f"dvc repro {stage}" if stage else shlex.join(["python", "-m", asked["module"], *asked["argv"]])
    print(f"pipeline warm: the warm server ended while it ran `{command}`; run it again", file=sys.stderr)
    return 1
