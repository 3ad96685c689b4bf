"""A stage as the command dvc.yaml runs: `python -m pipeline.stages.<stage> NAME [-p FILE] [-S KEY=VALUE]...`.

Each stage module ends by handing its `<stage>_named` function (the stage of one dataset or model, looked up in the
params) to `stage_command`, which parses those arguments, reads the params file with the `-S` overrides applied as
`dvc exp run -S` applies them, removes what killed stages left in the workspace (`pipeline.core.leftovers`: DVC may
restore a stage from its run cache without running its code, so no stage can count on cleaning up after itself),
calls the function and prints what it returns: sorted JSON, a line of text as it is, nothing for None. Under `dvc exp
run`, it first checks that the params file is still its experiment's (`pipeline.stages.experiment_guard`). A
`PipelineError` prints as one red line on stderr, naming the command to run again where its fix is to run it again,
and the status is 1. The `pipeline` command (`pipeline.cli`) calls the same `<stage>_named` functions, so nothing a
stage does lives in two places.
"""

import argparse
import inspect
import json
import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from pipeline.config.params import Params, load_params
from pipeline.core.errors import PipelineError
from pipeline.core.leftovers import remove_leftovers
from pipeline.core.paths import Paths
from pipeline.core.stage_times import record_stage
from pipeline.stages.experiment_guard import check_own_experiment

DEFAULT_PARAMS = Path("params.yaml")
RED, PLAIN = "\x1b[31m", "\x1b[0m"


def dataset_named(params: Params, name: str) -> str:
    """`name`, once it is a dataset under `data` (else an error that lists them)."""
    if name not in params.data:
        raise PipelineError(f"unknown dataset {name!r}: params.yaml `data` has {', '.join(params.data)}")
    return name


def stage_output(result: Any) -> str | None:
    """What a stage command prints for its `<stage>_named` function's result: text as it is, anything else as
    sorted JSON, None (a torchrun process that writes nothing) as nothing."""
    if result is None or isinstance(result, str):
        return result
    return json.dumps(result, indent=2, sort_keys=True)


def error_line(error: PipelineError) -> str:
    """A user's error as the one line a stage command prints: red on a terminal, plain text elsewhere."""
    line = f"error: {error}"
    return f"{RED}{line}{PLAIN}" if sys.stderr.isatty() else line


def start_clean(paths: Paths = Paths()) -> None:
    """Remove what killed stages left in the workspace (`pipeline.core.leftovers`), saying so in one line on
    stderr: what each stage command does before its work."""
    removed = remove_leftovers(paths)
    if removed:
        print(f"removed what killed runs left: {', '.join(removed)}", file=sys.stderr, flush=True)


def rerun_command(module: str, arguments: list[str]) -> str:
    """The command that runs this stage again: `dvc repro <stage>` under DVC (which names the stage it runs in
    DVC_STAGE), else the command as it was typed."""
    stage = os.environ.get("DVC_STAGE")
    return f"dvc repro {stage}" if stage else shlex.join(["python", "-m", module, *arguments])


def stage_command(stage: Callable[..., Any], reads_params: bool = True) -> NoReturn:
    """Run `stage` (`<stage>_named`: the name, then the params unless not `reads_params`) as this process's command,
    once the workspace is clean of what killed stages left (after the params are read, where it reads them: a run
    from a folder without them touches nothing), print its output, record the stage's time, and end the process at
    once with its status.

    A process that has imported torch takes about a second to tear its modules down at a normal exit, which
    `dvc repro` would wait for after each stage. By the time the stage returns, every output is written and closed
    (atomically), so nothing is left for that teardown to do but free memory: stdout and stderr are flushed and the
    process ends with `os._exit`. An unexpected exception is not caught: it ends the process with its traceback.
    """
    imported = time.time()
    arguments = _parser(stage, reads_params).parse_args()
    status = 1
    try:
        check_own_experiment(arguments.params if reads_params else DEFAULT_PARAMS)
        params = load_params(arguments.params, arguments.set or []) if reads_params else None
        start_clean()
        output = stage_output(stage(arguments.name, params) if reads_params else stage(arguments.name))
        if output is not None:
            print(output)
        status = 0
    except PipelineError as error:
        print(error_line(error.naming_command(rerun_command(_module(stage), sys.argv[1:]))), file=sys.stderr)
    finally:
        record_stage(imported)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _parser(stage: Callable[..., Any], reads_params: bool) -> argparse.ArgumentParser:
    """The stage command's arguments: the dataset or model (named as `stage`'s first parameter), -p and -S."""
    what = next(iter(inspect.signature(stage).parameters))
    description = (stage.__doc__ or "").split("\n")[0]
    parser = argparse.ArgumentParser(prog=f"python -m {_module(stage)}", description=description)
    parser.add_argument("name", metavar=what.split("_")[0].upper(), help=f"the {what.replace('_', ' ')}: dvc.yaml's ${{key}}")
    if reads_params:
        parser.add_argument("-p", "--params", type=Path, default=DEFAULT_PARAMS, help="Params file to read.")
        parser.add_argument(
            "-S", "--set", action="append", metavar="KEY=VALUE",
            help="Override a param (repeatable), e.g. -S aug.rotation=20.",
        )
    return parser


def _module(stage: Callable[..., Any]) -> str:
    """The module `python -m` runs: `stage`'s, unless this process runs another as its `__main__`."""
    main = sys.modules["__main__"]
    return main.__spec__.name if getattr(main, "__spec__", None) else stage.__module__
