"""What dvc.yaml runs: `python -m pipeline.cli.run_stage <stage> <name>`, the stage command of `pipeline.cli.stages`,
handed to the warm server when `pipeline warm` runs one (`make repro` does), else run here, cold.

A stage command spends seconds importing torch, scikit-learn, matplotlib and torch.export before its work, in each
of the pipeline's 44 processes. The server (`pipeline.cli.warm_server`) has imported them once; for each command it
forks a child that becomes this process (its working folder, environment, arguments and standard streams) and runs
the command there, with the project's own modules imported fresh from the working folder. This process waits for
the child's exit status and passes on the signals it gets (DVC's Ctrl-C, a kill), so to DVC it is the stage.

Nothing here is imported but the standard library: the point is to be cheap when a server serves the command, and
harmless when none does (no `PIPELINE_WARM_SOCKET`, a server that has gone, or one that refuses): the command runs
cold, with the same code on the same inputs.
"""

import json
import os
import signal
import socket
import sys
from typing import Any

SOCKET_ENV = "PIPELINE_WARM_SOCKET"  # set by `pipeline warm` for the command it runs
# The signals that end a stage, as this platform has them.
FORWARDED = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT") if hasattr(signal, name))


def request(module: str) -> dict[str, Any]:
    """What the server needs to become this process and run `python -m module` as it would have."""
    return {
        "module": module,
        "argv": sys.argv[1:],
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "path": sys.path,
        "executable": sys.executable,
        "flags": list(sys.flags),
        "pid": os.getpid(),
    }


def hand_over(module: str) -> None:
    """Run `python -m module` with this process's arguments in a warm child and end this process with its status;
    return (having done nothing) when no warm server takes it."""
    path = os.environ.get(SOCKET_ENV)
    if not path:
        return
    try:
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.connect(path)
        socket.send_fds(connection, [json.dumps(request(module)).encode() + b"\n"], [0, 1, 2])
        replies = connection.makefile("r")
        answer = json.loads(replies.readline() or "{}")
    except (OSError, ValueError):
        return
    if "pid" not in answer:
        return  # refused (another environment or interpreter): run cold
    _forward_signals(answer["pid"])
    ended = replies.readline()
    status = json.loads(ended)["exit"] if ended else _server_gone()
    if status < 0:  # the child died of a signal: so does this process
        signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
    os._exit(status)


def _forward_signals(pid: int) -> None:
    """Pass the signals that end a stage on to the child that runs it."""

    def forward(number: int, _frame: Any) -> None:
        try:
            os.kill(pid, number)
        except ProcessLookupError:
            pass

    for number in FORWARDED:
        signal.signal(number, forward)


def _server_gone() -> int:
    print("pipeline warm: the warm server ended while it ran this command; run it again", file=sys.stderr)
    return 1


STAGES_MODULE = "pipeline.cli.stages"

if __name__ == "__main__":
    hand_over(STAGES_MODULE)
    from pipeline.cli.stages import run_and_exit

    run_and_exit()
