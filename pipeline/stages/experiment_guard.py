"""A stage started by `dvc exp run` checks that the params file is still the one of its own experiment.

Two `dvc exp run` started in one workspace moments apart can mix: each writes its `-S` values into params.yaml
before it waits for the repository's lock, so the one that runs first can read the other's values and train with a
learning rate it was never given. DVC keeps the experiment it is running as a stash commit, the git ref
`refs/exps/exec/EXEC_MERGE`: its message ends in the experiment's name, and its params file holds the values the
experiment was given. The stage's process gets that name as `DVC_EXP_NAME`. A stage refuses to start when the ref
names another experiment, or when the workspace's params file differs from the ref's; the message points at the
queue, DVC's way to run experiments side by side. Outside `dvc exp run` (no `DVC_EXP_NAME`), or where git or the ref
is missing, there is nothing to compare and the stage runs.
"""

import os
import shutil
import subprocess
from pathlib import Path

from pipeline.config.overrides import read_yaml
from pipeline.core.errors import PipelineError

EXPERIMENT_REF = "refs/exps/exec/EXEC_MERGE"
QUEUE = (
    "run experiments side by side through DVC's queue (`dvc exp run --queue -S KEY=VALUE` for each, then "
    "`dvc queue start -j 2`), never as two plain `dvc exp run` in one workspace; run this one again"
)


def check_own_experiment(params_file: Path) -> None:
    """Stop unless the experiment DVC is running in this workspace is this process's and `params_file` still holds
    the values it was given."""
    name = os.environ.get("DVC_EXP_NAME")
    if not name or shutil.which("git") is None:
        return
    message = _git("show", "-s", "--format=%s", EXPERIMENT_REF)
    if message is None:
        return
    running = message.strip().rsplit(":", 1)[-1]
    if running != name:
        raise PipelineError(
            f"another `dvc exp run` (experiment {running!r}) took over this workspace while experiment {name!r} was "
            f"starting, and wrote its own values into {params_file}; nothing was run: {QUEUE}"
        )
    given = _git("show", f"{EXPERIMENT_REF}:./{params_file.as_posix()}")
    if given is not None and params_file.is_file() and read_yaml(given) != read_yaml(params_file.read_text()):
        raise PipelineError(
            f"{params_file} changed after `dvc exp run` started experiment {name!r} (another `dvc exp run` or an "
            f"edit wrote other values into it), so this stage would not run with the values the experiment was "
            f"given; nothing was run: {QUEUE}"
        )


def _git(*args: str) -> str | None:
    """The output of a git command in the working directory, or None when it fails."""
    result = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
    return result.stdout if result.returncode == 0 else None
