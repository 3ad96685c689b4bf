"""The stage commands: what dvc.yaml runs (`python -m pipeline.cli.stages <stage> <name>`), and the `pipeline` command
runs by hand with the same functions.

Every command reads params.yaml (or --params) once, applies `-S key=value` overrides as `dvc exp run -S` does,
and validates everything before any work. Problems print as one red line and exit with status 1. Only stage
commands live here, so that a stage's code deps are the stage's modules, not every tool's.
"""

import functools
import importlib
import os
import sys
import time
from collections.abc import Callable
from typing import Annotated, Any, NoReturn

import typer

from pipeline.cli.common import (
    DEFAULT_PARAMS,
    Dataset,
    Model,
    Overrides,
    ParamsFile,
    dataset_named,
    load,
    report_json,
    user_errors,
)
from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths
from pipeline.core.stage_times import record_stage

app = typer.Typer(
    help="Reproducible image-classification pipeline. Each stage command is one DVC stage; `dvc repro` runs them all.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def timed(module: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A stage command that imports its stage's `module` first and, run by DVC, records its start-up, imports and
    work (`pipeline.core.stage_times`, read by `pipeline bench-repro`)."""

    def wrap(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def run(*args: Any, **kwargs: Any) -> Any:
            importlib.import_module(module)
            imported = time.time()
            try:
                return command(*args, **kwargs)
            finally:
                record_stage(imported)

        return run

    return wrap


@app.command()
@user_errors
@timed("pipeline.stages.download")
def download(dataset: Dataset, params: ParamsFile = DEFAULT_PARAMS, set_: Overrides = None) -> None:
    """Bring the dataset's raw images into data/raw/<dataset>/ from its source (local, sample, kaggle, ...)."""
    from pipeline.stages.download import download as run

    loaded = load(params, set_)
    index = run(dataset_named(loaded, dataset), loaded.data[dataset], loaded.seed, Paths())
    left_out = ", ".join(f"{count} {reason}" for reason, count in index.ignored.items())
    typer.echo(
        f"{dataset}: {index.samples} samples of {len(index.classes)} classes ({', '.join(index.classes)}), "
        f"{index.layout} layout, in {Paths().raw_dir(dataset)}" + (f"; left out: {left_out}" if left_out else "")
    )


@app.command()
@user_errors
@timed("pipeline.stages.settings")
def settings(dataset: Dataset, params: ParamsFile = DEFAULT_PARAMS, set_: Overrides = None) -> None:
    """Write the dataset's split, preprocess and aug blocks, defaults filled in, to data/settings/<dataset>/."""
    from pipeline.stages.settings import settings as run

    loaded = load(params, set_)
    report_json(run(dataset_named(loaded, dataset), loaded, Paths()))


@app.command()
@user_errors
@timed("pipeline.stages.split")
def split(dataset: Dataset, params: ParamsFile = DEFAULT_PARAMS, set_: Overrides = None) -> None:
    """Write shuffled train/val/test manifests (balanced or stratified) to data/manifests/<dataset>/."""
    from pipeline.stages.split import split as run

    loaded = load(params, set_)
    name = dataset_named(loaded, dataset)
    report_json(run(name, loaded.split[name], loaded.seed, Paths(), near=loaded.near_duplicates(name)))


@app.command()
@user_errors
@timed("pipeline.stages.preprocess")
def preprocess(dataset: Dataset, params: ParamsFile = DEFAULT_PARAMS, set_: Overrides = None) -> None:
    """Decode, convert and resize every split's images into uint8 arrays in data/processed/<dataset>/."""
    from pipeline.stages.preprocess import preprocess as run

    loaded = load(params, set_)
    report_json(run(dataset_named(loaded, dataset), loaded.preprocess[dataset], Paths()))


@app.command()
@user_errors
@timed("pipeline.stages.audit")
def audit(
    target: Annotated[str, typer.Argument(help="The dataset to audit, or `review` to review a dataset's findings.")],
    dataset: Annotated[str | None, typer.Argument(help="With `review`: the dataset.")] = None,
    accept: Annotated[bool, typer.Option(help="With `review`: take every suggestion without asking.")] = False,
    params: ParamsFile = DEFAULT_PARAMS,
    set_: Overrides = None,
) -> None:
    """Audit a dataset (`audit@<dataset>`): near-duplicates, likely label errors and outliers into
    metrics/<dataset>/audit/; `audit review DATASET` walks through them and writes reviews/<dataset>/."""
    loaded = load(params, set_)
    if target == "review":
        from pipeline.tools.audit_review import review

        name = dataset_named(loaded, dataset or "")
        review(name, loaded.split[name], Paths(), accept=accept)
        return
    from pipeline.stages.audit import audit as run

    name = dataset_named(loaded, target)
    if name not in loaded.audit:
        raise PipelineError(f"audit.{name}: no such block in params.yaml; add one to audit {name!r}")
    report_json(run(name, loaded.audit_of(name), loaded.audit_model(name), loaded.seed, Paths()))


@app.command()
@user_errors
@timed("pipeline.stages.train")
def train(
    model: Model,
    params: ParamsFile = DEFAULT_PARAMS,
    set_: Overrides = None,
    nproc: Annotated[
        int, typer.Option("--nproc", min=1, help="Train in N processes on this machine (one per GPU) with torchrun.")
    ] = 1,
    nnodes: Annotated[
        int, typer.Option("--nnodes", min=1, help="Train across N machines, each running this command.")
    ] = 1,
    node_rank: Annotated[
        int, typer.Option("--node-rank", min=0, help="This machine's number, 0 to N-1; node 0 writes the model.")
    ] = 0,
    master: Annotated[
        str | None, typer.Option("--master", help="ADDR:PORT of node 0, where the machines meet (c10d rendezvous).")
    ] = None,
) -> None:
    """Train a model on its dataset; logs learning curves and writes models/<model>.pt."""
    loaded = load(params, set_)
    if nproc > 1 or nnodes > 1 or node_rank or master is not None:
        from pipeline.cli.torchrun import Nodes, launch

        nodes = Nodes(nproc=nproc, nnodes=nnodes, node_rank=node_rank, master=master)
        overrides = [argument for item in set_ or [] for argument in ("--set", item)]
        arguments = ["train", model, "--params", str(params), *overrides]
        raise typer.Exit(launch(nodes, arguments, run_id=f"pipeline-{model}"))
    from pipeline.core.distributed import current_shard
    from pipeline.stages.train import train as run

    result = run(model, loaded, Paths())
    if current_shard().is_main:
        report_json(result)


@app.command()
@user_errors
@timed("pipeline.stages.evaluate")
def evaluate(
    model: Model,
    device: Annotated[str, typer.Option(help="auto (CUDA when present), cpu or cuda[:N].")] = "auto",
    params: ParamsFile = DEFAULT_PARAMS,
    set_: Overrides = None,
) -> None:
    """Score a trained model on the test split, with its `evaluate.tta`; writes metrics/<model>/test.json, a
    confusion matrix, the top losses, the most confused pairs and the model card models/<model>.card.md."""
    from pipeline.stages.evaluate import evaluate as run

    config = load(params, set_)
    settings = config.model(model).evaluate
    report_json(run(model, Paths(), device, data=config.data, tta=settings.tta, gradcam=settings.gradcam))


@app.command()
@user_errors
@timed("pipeline.stages.export")
def export(model: Model) -> None:
    """Export a trained model to models/<model>.onnx and .pt2 (preprocessed inputs in, class probabilities out),
    checked against PyTorch on the test split; writes metrics/<model>/export.json."""
    from pipeline.stages.export import export as run

    report_json(run(model, Paths()))


def exit_status(exit_: SystemExit) -> int:
    """The status a process ends with on `exit_`: its code, 0 for None, else 1 with a text code printed to stderr."""
    if isinstance(exit_.code, str):
        print(exit_.code, file=sys.stderr)
    return exit_.code if isinstance(exit_.code, int) else 0 if exit_.code is None else 1


def run_and_exit() -> NoReturn:
    """Run the stage command of `sys.argv`, then end the process at once, as the stage has finished.

    A process that has imported torch takes about a second to tear its modules down at a normal exit (1.0 to 1.4 s
    measured on 2 cores), which `dvc repro` waits for after each of its 27 train, evaluate and export stages. By the
    time a command returns, every output is written and closed (atomically), so nothing is left for that teardown
    to do but free memory: stdout and stderr are flushed and the process exits with the command's status.
    """
    try:
        app(prog_name="pipeline")
        status = 0
    except SystemExit as exit_:
        status = exit_status(exit_)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    run_and_exit()
