"""What every `pipeline` command shares: the params options and the one-red-line error handling."""

import functools
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from pipeline.config.params import Params, load_params
from pipeline.core.errors import PipelineError
from pipeline.stages.command import DEFAULT_PARAMS

ParamsFile = Annotated[Path, typer.Option("--params", "-p", help="Params file to read.")]
Overrides = Annotated[
    list[str] | None,
    typer.Option("--set", "-S", help="Override a param, key=value (repeatable), e.g. -S aug.rotation=20."),
]
Dataset = Annotated[str, typer.Argument(help="Dataset name, a key under `data` in params.yaml (e.g. catsdogs).")]
Model = Annotated[str, typer.Argument(help="Model name, a key under `models` in params.yaml (e.g. catsdogs_cnn).")]


def user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """A command whose `PipelineError`s print as one red line (naming the command, as typed, where the fix is to run
    it again) and exit with status 1."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except PipelineError as exc:
            typer.secho(f"error: {exc.naming_command(typed_command())}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None

    return run


def typed_command() -> str:
    """This `pipeline` command as the user typed it."""
    return shlex.join(["pipeline", *sys.argv[1:]])


def load(path: Path, overrides: list[str] | None) -> Params:
    """The params file, `-S` overrides applied, validated."""
    return load_params(path, overrides or [])
