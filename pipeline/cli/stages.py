"""The stage commands of the `pipeline` command: each calls its stage module's `<stage>_named` function, the one
`python -m pipeline.stages.<stage>` (what dvc.yaml runs) calls, so a stage run by hand does what DVC's does.

Every command reads params.yaml (or --params) once, applies `-S key=value` overrides as `dvc exp run -S` does,
and validates everything before any work; then it removes what killed stages left in the workspace, as the stage's
own command does (`pipeline.stages.command.start_clean`). Problems print as one red line and exit with status 1.
Only stage commands live here; `train --nproc` starts the train stage's module under torchrun
(`pipeline.cli.torchrun`).
"""

from pathlib import Path
from typing import Annotated, Any

import typer

from pipeline.cli.common import DEFAULT_PARAMS, Dataset, Model, Overrides, ParamsFile, load, user_errors
from pipeline.cli.serve import REVIEW_PORT, ReviewHost, ReviewPort, ReviewToken, serve_review
from pipeline.config.params import Params
from pipeline.core.paths import Paths
from pipeline.stages.command import start_clean

app = typer.Typer(
    help="Reproducible image-classification pipeline. Each stage command is one DVC stage; `dvc repro` runs them all.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.command()
@user_errors
def download(dataset: Dataset, params: ParamsFile = DEFAULT_PARAMS, set_: Overrides = None) -> None:
    """Bring the dataset's raw images into data/raw/<dataset>/ from its source (local, sample, kaggle, ...)."""
    from pipeline.stages.download import download_named

    _echo(download_named(dataset, _started(params, set_)))


@app.command()
@user_errors
def settings(dataset: Dataset, params: ParamsFile = DEFAULT_PARAMS, set_: Overrides = None) -> None:
    """Write the dataset's split, preprocess and aug blocks, defaults filled in, to data/settings/<dataset>/."""
    from pipeline.stages.settings import settings_named

    _echo(settings_named(dataset, _started(params, set_)))


@app.command()
@user_errors
def split(dataset: Dataset, params: ParamsFile = DEFAULT_PARAMS, set_: Overrides = None) -> None:
    """Write shuffled train/val/test manifests (balanced or stratified) to data/manifests/<dataset>/."""
    from pipeline.stages.split import split_named

    _echo(split_named(dataset, _started(params, set_)))


@app.command()
@user_errors
def preprocess(dataset: Dataset, params: ParamsFile = DEFAULT_PARAMS, set_: Overrides = None) -> None:
    """Decode, convert and resize every split's images into uint8 arrays in data/processed/<dataset>/."""
    from pipeline.stages.preprocess import preprocess_named

    _echo(preprocess_named(dataset, _started(params, set_)))


@app.command()
@user_errors
def audit(
    target: Annotated[str, typer.Argument(help="The dataset to audit, or `review` to review a dataset's findings.")],
    dataset: Annotated[str | None, typer.Argument(help="With `review`: the dataset.")] = None,
    accept: Annotated[bool, typer.Option(help="With `review`: take every suggestion without asking.")] = False,
    web: Annotated[
        bool, typer.Option(help="With `review`: review in a browser, each finding's images shown, on --host:--port.")
    ] = False,
    host: ReviewHost = "127.0.0.1",
    port: ReviewPort = REVIEW_PORT,
    token: ReviewToken = None,
    params: ParamsFile = DEFAULT_PARAMS,
    set_: Overrides = None,
) -> None:
    """Audit a dataset (`audit@<dataset>`): near-duplicates, likely label errors and outliers into
    metrics/<dataset>/audit/; `audit review DATASET` walks through them (`--web`: in a browser) and writes
    reviews/<dataset>/."""
    loaded = _started(params, set_)
    if target == "review":
        from pipeline.stages.command import dataset_named

        name = dataset_named(loaded, dataset or "")
        if web:
            serve_review(name, loaded.split[name], host, port, token)
            return
        from pipeline.analysis.audit_review import review

        review(name, loaded.split[name], Paths(), accept=accept)
        return
    from pipeline.stages.audit import audit_named

    _echo(audit_named(target, loaded))


@app.command()
@user_errors
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
    loaded = _started(params, set_)
    if nproc > 1 or nnodes > 1 or node_rank or master is not None:
        from pipeline.cli.torchrun import Nodes, launch

        nodes = Nodes(nproc=nproc, nnodes=nnodes, node_rank=node_rank, master=master)
        overrides = [argument for item in set_ or [] for argument in ("--set", item)]
        raise typer.Exit(launch(nodes, [model, "--params", str(params), *overrides], run_id=f"pipeline-{model}"))
    from pipeline.stages.train import train_named

    _echo(train_named(model, loaded))


@app.command()
@user_errors
def evaluate(
    model: Model,
    device: Annotated[str, typer.Option(help="auto (CUDA when present), cpu or cuda[:N].")] = "auto",
    params: ParamsFile = DEFAULT_PARAMS,
    set_: Overrides = None,
) -> None:
    """Score a trained model on the test split, with its `evaluate.tta`; writes metrics/<model>/test.json, a
    confusion matrix, the top losses, the most confused pairs and the model card models/<model>.card.md."""
    from pipeline.stages.evaluate import evaluate_named

    _echo(evaluate_named(model, _started(params, set_), device))


@app.command()
@user_errors
def export(model: Model) -> None:
    """Export a trained model to models/<model>.onnx and .pt2 (preprocessed inputs in, class probabilities out),
    checked against PyTorch on the test split; writes metrics/<model>/export.json."""
    from pipeline.stages.export import export_named

    start_clean()
    _echo(export_named(model))


def _started(params: Path, overrides: list[str] | None) -> Params:
    """The params file, `-S` overrides applied, validated; then the workspace rid of what killed stages left."""
    loaded = load(params, overrides)
    start_clean()
    return loaded


def _echo(result: Any) -> None:
    """Print a stage's result as its stage command prints it (`pipeline.stages.command.stage_output`)."""
    from pipeline.stages.command import stage_output

    output = stage_output(result)
    if output is not None:
        typer.echo(output)
