"""The `pipeline` command: run any stage by hand, with the same functions dvc.yaml calls.

Every command reads params.yaml (or --params) once, applies `-S key=value` overrides as `dvc exp run -S` does,
and validates everything before any work. Problems print as one red line and exit with status 1.
"""

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from pipeline.config.params import Params, load_params
from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths

app = typer.Typer(
    help="Reproducible image-classification pipeline. Each command is one DVC stage; `dvc repro` runs them all.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

ParamsFile = Annotated[Path, typer.Option("--params", "-p", help="Params file to read.")]
Overrides = Annotated[
    list[str] | None,
    typer.Option("--set", "-S", help="Override a param, key=value (repeatable), e.g. -S aug.rotation=20."),
]
Dataset = Annotated[str, typer.Argument(help="Dataset name, a key under `data` in params.yaml (e.g. catsdogs).")]
Model = Annotated[str, typer.Argument(help="Model name, a key under `models` in params.yaml (e.g. catsdogs_cnn).")]
DEFAULT_PARAMS = Path("params.yaml")


def _user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except PipelineError as exc:
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None

    return run


def _params(path: Path, overrides: list[str] | None) -> Params:
    return load_params(path, overrides or [])


def _dataset(params: Params, name: str) -> str:
    if name not in params.data:
        raise PipelineError(f"unknown dataset {name!r}: params.yaml `data` has {', '.join(params.data)}")
    return name


def _report(result: Any) -> None:
    typer.echo(json.dumps(result, indent=2, sort_keys=True))


@app.command()
@_user_errors
def download(dataset: Dataset, params: ParamsFile = DEFAULT_PARAMS, set_: Overrides = None) -> None:
    """Bring the dataset's raw images into data/raw/<dataset>/ from its source (local, sample, kaggle, ...)."""
    from pipeline.stages.download import download as run

    loaded = _params(params, set_)
    index = run(_dataset(loaded, dataset), loaded.data[dataset], loaded.seed, Paths())
    left_out = ", ".join(f"{count} {reason}" for reason, count in index.ignored.items())
    typer.echo(
        f"{dataset}: {index.samples} samples of {len(index.classes)} classes ({', '.join(index.classes)}), "
        f"{index.layout} layout, in {Paths().raw_dir(dataset)}" + (f"; left out: {left_out}" if left_out else "")
    )


@app.command()
@_user_errors
def split(dataset: Dataset, params: ParamsFile = DEFAULT_PARAMS, set_: Overrides = None) -> None:
    """Write shuffled train/val/test manifests (balanced or stratified) to data/manifests/<dataset>/."""
    from pipeline.stages.split import split as run

    loaded = _params(params, set_)
    _report(run(_dataset(loaded, dataset), loaded.split[dataset], loaded.seed, Paths()))


@app.command()
@_user_errors
def preprocess(dataset: Dataset, params: ParamsFile = DEFAULT_PARAMS, set_: Overrides = None) -> None:
    """Decode, convert and resize every split's images into uint8 arrays in data/processed/<dataset>/."""
    from pipeline.stages.preprocess import preprocess as run

    loaded = _params(params, set_)
    _report(run(_dataset(loaded, dataset), loaded.preprocess[dataset], Paths()))


@app.command()
@_user_errors
def settings(dataset: Dataset, params: ParamsFile = DEFAULT_PARAMS, set_: Overrides = None) -> None:
    """Write the dataset's split, preprocess and aug blocks, defaults filled in, to data/settings/<dataset>/."""
    from pipeline.stages.settings import settings as run

    loaded = _params(params, set_)
    _report(run(_dataset(loaded, dataset), loaded, Paths()))


@app.command()
@_user_errors
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
    loaded = _params(params, set_)
    if nproc > 1 or nnodes > 1 or node_rank or master is not None:
        from pipeline.core.distributed import Nodes, launch

        nodes = Nodes(nproc=nproc, nnodes=nnodes, node_rank=node_rank, master=master)
        overrides = [argument for item in set_ or [] for argument in ("--set", item)]
        arguments = ["train", model, "--params", str(params), *overrides]
        raise typer.Exit(launch(nodes, arguments, run_id=f"pipeline-{model}"))
    from pipeline.core.distributed import current_shard
    from pipeline.stages.train import train as run

    result = run(model, loaded, Paths())
    if current_shard().is_main:
        _report(result)


@app.command()
@_user_errors
def bench(
    model: Model,
    epochs: Annotated[int, typer.Option(min=1, help="Epochs of the train stage to time, after a first one.")] = 3,
    steps: Annotated[
        int | None, typer.Option(min=1, help="Bare training steps a timing (default: an epoch's worth).")
    ] = None,
    params: ParamsFile = DEFAULT_PARAMS,
    set_: Overrides = None,
) -> None:
    """Measure training speed: the data feed alone, a bare training step, the train stage end to end, and the
    share of the bare step's speed the stage keeps; writes metrics/bench/<model>.json."""
    from pipeline.training.bench import bench as run
    from pipeline.training.bench import render

    typer.echo(render(run(model, _params(params, set_), Paths(), epochs=epochs, steps=steps)))


@app.command()
@_user_errors
def evaluate(
    model: Model,
    device: Annotated[str, typer.Option(help="auto (CUDA when present), cpu or cuda[:N].")] = "auto",
) -> None:
    """Score a trained model on the test split; writes metrics/<model>/test.json and a confusion matrix."""
    from pipeline.stages.evaluate import evaluate as run

    _report(run(model, Paths(), device))


@app.command()
@_user_errors
def report(
    out: Annotated[Path, typer.Option("--out", "-o", help="Markdown file to write; charts go beside it.")] = Path(
        "reports/experiments.md"
    ),
    model: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", help="Model to report (repeatable); default: those whose scores differ."),
    ] = None,
    exp: Annotated[
        list[str] | None,
        typer.Option("--exp", "-e", help="Experiment to report (repeatable), beside the baseline; default: all."),
    ] = None,
) -> None:
    """Summarise the DVC experiments of this repository: a table of differing params and test scores per model,
    and the learning curves of the baseline and the best run."""
    from pipeline.analysis.report import report as run

    typer.echo(f"wrote {run(out, model or None, exp or None)}")


@app.command()
@_user_errors
def inspect(
    path: Annotated[Path, typer.Argument(help="A folder, .zip or .tar(.gz) of images, in any accepted layout.")],
    layout: Annotated[
        str, typer.Option(help="auto, class_folders, split_folders, names, csv or csv:<file in the tree>.")
    ] = "auto",
    write: Annotated[
        str | None,
        typer.Option("--write", metavar="NAME", help="Add the printed params blocks to --params as dataset NAME."),
    ] = None,
    params: ParamsFile = DEFAULT_PARAMS,
) -> None:
    """Look at a dataset before training on it: its layout, classes and counts, image sizes and formats, unreadable
    and duplicate files, what is ignored, and the params blocks that declare it (--write NAME adds them)."""
    from pipeline.analysis.params_blocks import declare

    typer.echo(declare(path, layout, write, params), nl=False)


@app.command("make-images")
@_user_errors
def make_images(
    path: Annotated[Path, typer.Argument(help="A new folder to write the images to.")],
    layout: Annotated[str, typer.Option(help="class_folders, split_folders, names or csv.")] = "class_folders",
    classes: Annotated[int, typer.Option(min=2, max=13, help="Number of classes (shapes).")] = 3,
    per_class: Annotated[int, typer.Option(min=3, help="Images of the first (largest) class.")] = 200,
    imbalance: Annotated[float, typer.Option(min=1, help="First class over last class, in images.")] = 1.0,
    flaws: Annotated[bool, typer.Option(help="Add a zero-byte and a truncated JPEG, a duplicate, OS clutter.")] = False,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the images.")] = 0,
) -> None:
    """Write a generated photo folder that looks like your own (shapes over clutter, any sizes, JPEG and PNG, odd
    names) in one of the layouts, to try `pipeline inspect` and a dataset of your own without any download."""
    from pipeline.data.shapes import make_images as run

    if path.exists():
        raise PipelineError(f"{path} exists; give make-images a new folder")
    counts = run(path, layout, classes, per_class, imbalance, seed, flaws)
    typer.echo(f"{path}: {sum(counts.values())} images in {layout} layout ({', '.join(f'{c}: {n}' for c, n in counts.items())})")


Remote = Annotated[
    str | None, typer.Option("--remote", "-r", help="DVC remote to use (default: the one `dvc remote add -d` set).")
]
Jobs = Annotated[int | None, typer.Option("--jobs", "-j", min=1, help="Parallel transfers (default: DVC's).")]


@app.command()
def push(remote: Remote = None, jobs: Jobs = None) -> None:
    """Upload the DVC cache (data, models, metrics) to the remote: `dvc push`, plus a hint on how to fix a failure."""
    _transfer("push", remote, jobs)


@app.command()
def pull(remote: Remote = None, jobs: Jobs = None) -> None:
    """Download and check out what dvc.lock names from the remote: `dvc pull`, plus a hint on how to fix a failure."""
    _transfer("pull", remote, jobs)


def _transfer(direction: str, remote: str | None, jobs: int | None) -> None:
    from pipeline.remote import transfer

    status, advice = transfer(direction, remote, jobs)
    if status:
        typer.secho(f"hint: {advice}", fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(1)


sanity = typer.Typer(help="Checks that explain training: run them on a model before trusting its numbers.")
app.add_typer(sanity, name="sanity")


@sanity.command()
@_user_errors
def overfit(
    model: Annotated[str, typer.Option("--model", "-m", help="Model name, a key under `models` in params.yaml.")],
    n: Annotated[int, typer.Option("--n", min=1, help="Training images to learn by heart.")] = 3,
    steps: Annotated[int, typer.Option("--steps", min=1, help="At most this many steps.")] = 1000,
    min_steps: Annotated[int, typer.Option("--min-steps", min=0, help="At least this many steps.")] = 0,
    target_loss: Annotated[float, typer.Option("--target-loss", help="Stop once the loss is below this.")] = 0.01,
    params: ParamsFile = DEFAULT_PARAMS,
    set_: Overrides = None,
) -> None:
    """Train a fresh model on N training images until the loss is near zero, then print its train-mode and
    eval-mode predictions side by side (BatchNorm makes them differ)."""
    from pipeline.training.sanity import overfit as run
    from pipeline.training.sanity import render

    loaded = _params(params, set_)
    result = run(model, loaded, Paths(), n=n, max_steps=steps, min_steps=min_steps, target_loss=target_loss)
    typer.echo(render(result, model))
