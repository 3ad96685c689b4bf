"""`pipeline tune`: the study of a model's params, run here by one worker or several (`--workers`), alone in the
workspace's SQLite file or shared with other machines' workers in a database (`--storage`); or, with
`--dashboard`, optuna-dashboard serving the study on 127.0.0.1."""

from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.common import Model, user_errors
from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths
from pipeline.tuning.storage import Where


@user_errors
def tune(
    model: Model,
    trials: Annotated[
        int, typer.Option(min=1, help="Finished trials (complete or pruned) the study should hold.")
    ] = 20,
    space: Annotated[
        Path | None,
        typer.Option(help="YAML of params keys and ranges ({low, high, log, int} or {choices}); default: the "
                     "model's lr, log-uniform over lr/10 to lr*10."),
    ] = None,
    seeds: Annotated[
        int, typer.Option(min=0, help="Re-run the best trial and the baseline with this many seeds and compare "
                          "them with Welch's test (0 or 1: no check).")
    ] = 3,
    pruner: Annotated[str, typer.Option(help="median, asha or none.")] = "median",
    storage: Annotated[
        str | None,
        typer.Option(help="Database URL of a study shared by workers (postgresql://user:password@host/db, any "
                     "URL Optuna's RDBStorage takes); default: .dvc/tmp/tune/<model>.sqlite3, this worker alone."),
    ] = None,
    study: Annotated[str | None, typer.Option(help="The study's name in --storage; default: tune-<model>.")] = None,
    push: Annotated[
        bool, typer.Option("--push", help="Push each trial's experiment to the git and DVC remotes "
                           "(`dvc exp push origin`), so that any machine can `dvc exp pull` it.")
    ] = False,
    workers: Annotated[
        int, typer.Option(min=1, help="Worker processes on this machine, each in its own clone of the last commit, "
                          "with cores/N threads (and one GPU each, where there are GPUs).")
    ] = 1,
    heartbeat: Annotated[
        int, typer.Option(min=1, help="Seconds between a shared study's heartbeats of a running trial.")
    ] = 30,
    grace: Annotated[
        int | None, typer.Option(min=1, help="Seconds without a heartbeat before a running trial is marked failed "
                                 "(its worker died); default: twice --heartbeat.")
    ] = None,
    retries: Annotated[
        int, typer.Option(min=0, help="Times a trial whose worker died is run again (0: skipped).")
    ] = 1,
    dashboard: Annotated[
        bool, typer.Option("--dashboard", help="Serve optuna-dashboard for the study on 127.0.0.1:--port "
                           "instead of tuning (Ctrl-C stops it).")
    ] = False,
    port: Annotated[int, typer.Option(min=1, max=65535, help="The dashboard's port.")] = 8080,
) -> None:
    """Search a model's params with Optuna (TPE, pruning on the validation curve), every trial a DVC experiment;
    an interrupted study resumes, and workers sharing a --storage draw trials from one study. Writes
    reports/tune/<model>/: optimisation history, parameter importances, summary.json (the seed check of the best
    trial against the baseline)."""
    from pipeline.tuning.storage import Sharing
    from pipeline.tuning.study import PRUNERS

    if pruner not in PRUNERS:
        raise PipelineError(f"--pruner: {pruner!r} is not one of {', '.join(PRUNERS)}")
    where = Where(storage, study, Sharing(heartbeat, grace, retries), push)
    if dashboard:
        _serve_dashboard(model, where, port)
    elif workers > 1:
        _several(model, trials, space, seeds, pruner, where, workers)
    else:
        _one(model, trials, space, seeds, pruner, where)


def _one(model: str, trials: int, space: Path | None, seeds: int, pruner: str, where: Where) -> None:
    """Tune as the one worker of this process, and print what the study found."""
    from pipeline.tuning.text import tune_text
    from pipeline.tuning.trials import tune_in_repo

    typer.echo(tune_text(tune_in_repo(Paths(), model, trials, space, seeds, pruner, where)))


def _several(
    model: str, trials: int, space: Path | None, seeds: int, pruner: str, where: Where, workers: int
) -> None:
    """Tune with `workers` worker processes on this machine, then print what the study found."""
    from pipeline.tuning.text import tune_text
    from pipeline.tuning.workers import tune_with_workers

    typer.echo(tune_text(tune_with_workers(Paths(), model, trials, space, seeds, pruner, where, workers)))


def _serve_dashboard(model: str, where: Where, port: int) -> None:
    """optuna-dashboard for the study's storage on 127.0.0.1:`port`, until Ctrl-C."""
    from pipeline.tuning.dashboard import serve_dashboard

    serve_dashboard(Paths(), model, where, port)
