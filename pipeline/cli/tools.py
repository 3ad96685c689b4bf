"""The `pipeline` commands that are not stages: inspect and make-images (your own data), report, bench,
bench-accuracy, bench-repro and bench-airbench (results), params (a model's resolved settings), lr-find, sanity
checks, push and pull, and warm (`make repro`'s warm stage processes). `pipeline.cli.main` adds them to the stage
commands."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.common import (
    DEFAULT_PARAMS,
    Model,
    Overrides,
    ParamsFile,
    load,
    user_errors,
)
from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths


@user_errors
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
    from pipeline.upkeep.train_bench import bench as measure_training
    from pipeline.upkeep.train_bench import training_bench_table

    typer.echo(training_bench_table(measure_training(model, load(params, set_), Paths(), epochs=epochs, steps=steps)))


@user_errors
def bench_airbench(
    dataset: Annotated[str, typer.Argument(help="A CIFAR-10-shaped dataset: 32x32 RGB, 10 classes.")] = "cifar10",
    out: Annotated[Path | None, typer.Option("--out", help="Also write the figures here, as JSON.")] = None,
) -> None:
    """Train airbench94 (the airbench package's own code, a dev dependency) on the dataset's preprocessed train
    split on the GPU and score it on the test split: the wall time and test accuracy to set beside `pipeline bench
    cifar_best`. Needs a CUDA GPU."""
    from pipeline.core.atomic import write_json
    from pipeline.upkeep.airbench_side import run_airbench94

    figures = run_airbench94(Paths(), dataset)
    typer.echo(json.dumps(figures, indent=2))
    if out:
        write_json(out, figures)
        typer.echo(f"wrote {out}")


def bench_accuracy(
    model: Model,
    targets: Annotated[
        str, typer.Option(help="Test accuracies to time, comma-separated, each between 0 and 1.")
    ] = "0.85,0.9,0.93,0.94",
    epochs: Annotated[
        int | None, typer.Option(min=2, help="Epochs to train (default: the model's own).")
    ] = None,
    params: ParamsFile = DEFAULT_PARAMS,
    set_: Overrides = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Where to write the figures (default metrics/bench/<model>.accuracy.json).")
    ] = None,
) -> None:
    """Measure time to accuracy: train the model with the train stage, score it on the test split after every epoch
    (with its evaluate stage's test-time augmentation, timed apart), and print the wall time to each target, the
    training images per second and the share of the machine's arithmetic they use (training FLOP/s over a large
    matrix product's, measured in the same run); writes metrics/bench/<model>.accuracy.json."""
    from pipeline.upkeep.accuracy_bench import accuracy_bench_table, parse_targets
    from pipeline.upkeep.accuracy_bench import bench_accuracy as measure_accuracy

    figures = measure_accuracy(model, load(params, set_), Paths(), parse_targets(targets), epochs=epochs, out=out)
    typer.echo(accuracy_bench_table(figures))


@user_errors
def bench_repro(
    root: Annotated[Path, typer.Option("--root", help="The repository whose last `dvc repro` to show.")] = Path("."),
    out: Annotated[
        Path | None, typer.Option("--out", help="Also write the sums by stage group here (reports/repro_times.json).")
    ] = None,
    wall: Annotated[float, typer.Option("--wall", help="With --out: the seconds the whole `make repro` took.")] = 0.0,
    machine: Annotated[str, typer.Option("--machine", help="With --out: the machine, in words.")] = "",
) -> None:
    """Show where the last `dvc repro` spent its time: per stage, DVC's own time before it, start-up and imports,
    and the work, with the sums per stage group and the share that was training; --out keeps the sums for the
    docs' table (then `pipeline dev docs --write`)."""
    from pipeline.analysis.repro_times import last_run, repro_record, stage_times_table
    from pipeline.core.atomic import write_json

    splits = last_run(root)
    typer.echo(stage_times_table(splits))
    if out:
        write_json(out, repro_record(splits, wall, machine))
        typer.echo(f"wrote {out}")


def warm(
    context: typer.Context,
    command: Annotated[str, typer.Argument(help="The command to run: dvc repro, dvc exp run, ...")],
    wait: Annotated[
        bool, typer.Option("--wait", help="Start the command once the server has imported everything.")
    ] = False,
) -> None:
    """Run COMMAND (and its arguments) with a warm server beside it: each stage process it starts hands its command
    to a process that has torch and the other heavy libraries imported already, rather than importing them itself
    (seconds a stage). `make repro` runs `pipeline warm dvc repro`; the outputs are those of a plain `dvc repro`.
    Stages that start while the server still imports (a few seconds) run cold, unless --wait."""
    from pipeline.cli.warm_server import run_warm

    raise typer.Exit(run_warm([command, *context.args], wait=wait))


@user_errors
def lr_find(
    model: Model,
    steps: Annotated[int, typer.Option(min=2, max=1000, help="Steps from lr 1e-7 to 10 (fastai: 100).")] = 100,
    apply: Annotated[bool, typer.Option("--apply", help="Write the valley suggestion as the model's lr.")] = False,
    params: ParamsFile = DEFAULT_PARAMS,
    set_: Overrides = None,
) -> None:
    """Run the learning-rate range test on a fresh model: the loss as the rate rises exponentially, plotted to
    metrics/<model>/lr_find.png, and fastai's suggestions (steepest descent, valley); --apply writes the valley."""
    from pipeline.preflight.lr_find import apply as write
    from pipeline.preflight.lr_find import find_and_plot

    loaded = load(params, set_)
    found, text = find_and_plot(model, loaded, Paths(), steps)
    typer.echo(text)
    if apply:
        typer.echo(write(params, loaded, model, found.valley[0]))


@user_errors
def show_params(model: Model, params: ParamsFile = DEFAULT_PARAMS, set_: Overrides = None) -> None:
    """Print the model's resolved settings, each with the params key its value comes from (the table its train stage
    prints), without training: on the sample, the keys of its `sample` block are the ones that set a run."""
    from pipeline.config.resolution import settings_text

    typer.echo(settings_text(load(params, set_), model))


@user_errors
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
    from pipeline.analysis.report import report as write_report

    typer.echo(f"wrote {write_report(out, model or None, exp or None)}")


@user_errors
def inspect(
    path: Annotated[
        Path,
        typer.Argument(
            help="A folder, .zip or .tar(.gz) of images, in any accepted layout; or a Hugging Face Hub dataset: "
            "hf:OWNER/NAME, or a folder of its parquet shards."
        ),
    ],
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
    from pipeline.onboarding.declare import declare

    typer.echo(declare(path, layout, write, params), nl=False)


@user_errors
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
    from pipeline.onboarding.shapes import make_images as generate_images

    if path.exists():
        raise PipelineError(f"{path} exists; give make-images a new folder")
    counts = generate_images(path, layout, classes, per_class, imbalance, seed, flaws)
    typer.echo(f"{path}: {sum(counts.values())} images in {layout} layout ({', '.join(f'{c}: {n}' for c, n in counts.items())})")


Remote = Annotated[
    str | None, typer.Option("--remote", "-r", help="DVC remote to use (default: the one `dvc remote add -d` set).")
]
Jobs = Annotated[int | None, typer.Option("--jobs", "-j", min=1, help="Parallel transfers (default: DVC's).")]


def push(remote: Remote = None, jobs: Jobs = None) -> None:
    """Upload the DVC cache (data, models, metrics) to the remote: `dvc push`, plus a hint on how to fix a failure."""
    _transfer("push", remote, jobs)


def pull(remote: Remote = None, jobs: Jobs = None) -> None:
    """Download and check out what dvc.lock names from the remote: `dvc pull`, plus a hint on how to fix a failure."""
    _transfer("pull", remote, jobs)


def _transfer(direction: str, remote: str | None, jobs: int | None) -> None:
    from pipeline.cli.remote import transfer

    status, advice = transfer(direction, remote, jobs)
    if status:
        typer.secho(f"hint: {advice}", fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(1)


sanity = typer.Typer(help="Checks that explain training: run them on a model before trusting its numbers.")


@sanity.command()
@user_errors
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
    from pipeline.preflight.sanity import overfit as overfit_images
    from pipeline.preflight.sanity import overfit_text

    loaded = load(params, set_)
    result = overfit_images(model, loaded, Paths(), n=n, max_steps=steps, min_steps=min_steps, target_loss=target_loss)
    typer.echo(overfit_text(result, model))


dev = typer.Typer(help="For those who change the pipeline's code.")


def _check_or_rewrite(
    write: bool, rewrite: Callable[[], list[str]], stale: Callable[[], list[str]], what: str, command: str
) -> None:
    """A `pipeline dev` check of generated content: name what is stale and fail, or with --write rewrite it."""
    if write:
        changed = rewrite()
        typer.echo(f"{what} rewritten for {', '.join(changed)}" if changed else f"{what} up to date")
        return
    names = stale()
    if names:
        raise PipelineError(f"{what} of {', '.join(names)} are stale; run `pipeline dev {command} --write`")
    typer.echo(f"{what} up to date")


@dev.command()
@user_errors
def deps(
    write: Annotated[bool, typer.Option("--write", help="Rewrite dvc.yaml's stale code deps.")] = False,
    root: Annotated[Path, typer.Option("--root", help="The repository.")] = Path("."),
) -> None:
    """Check dvc.yaml's code deps against the import graph (each stage's are exactly the modules its command
    imports; whole folders where it imports all of one); with --write, rewrite those that are stale."""
    from pipeline.upkeep.deps import stale_stages, write_deps

    _check_or_rewrite(write, lambda: write_deps(root), lambda: stale_stages(root), "dvc.yaml: code deps", "deps")


@dev.command()
@user_errors
def docs(
    context: typer.Context,
    write: Annotated[bool, typer.Option("--write", help="Rewrite the generated pages and tables that are stale.")] = False,
    root: Annotated[Path, typer.Option("--root", help="The repository.")] = Path("."),
) -> None:
    """Check the generated parts of README.md and docs/ (the params and command-line references, the tables of
    measured results from reports/*.json, the stage graph); with --write, rewrite those that are stale."""
    from pipeline.upkeep.docs_pages import stale_docs, write_docs

    cli = context.find_root().command  # the whole `pipeline` command, whose reference page is generated
    _check_or_rewrite(write, lambda: write_docs(root, cli), lambda: list(map(str, stale_docs(root, cli))), "docs", "docs")


@dev.command("gpu-table")
@user_errors
def gpu_table(
    root: Annotated[Path, typer.Argument(help="The scratch folder scripts/gpu_check.sh ran in.")],
    seconds: Annotated[int, typer.Option("--seconds", help="The whole check's seconds so far.")] = 0,
    model: Annotated[str, typer.Option("--model", help="The model the check timed.")] = "cifar_best",
    dataset: Annotated[str, typer.Option("--dataset", help="The dataset it trained on.")] = "cifar10",
) -> None:
    """Print the one table of `bash scripts/gpu_check.sh` (the device, tests/test_cuda.py, `pipeline bench`'s
    ratio against its goal, cifar_best and airbench94 side by side) from what its parts left in ROOT."""
    from pipeline.upkeep.gpu_check import gpu_check_table

    typer.echo(gpu_check_table(root, seconds, model, dataset))


@dev.command("sample-figures")
@user_errors
def sample_figures(
    machine: Annotated[str, typer.Option("--machine", help="The machine `make repro` ran on, in words.")],
    root: Annotated[Path, typer.Option("--root", help="The repository, after `make repro`.")] = Path("."),
) -> None:
    """Write reports/sample_figures.json from metrics/ after `make repro`: each model's sample budget, kept epoch and
    test figures, for the docs' results table (then `pipeline dev docs --write`)."""
    from pipeline.config.params import load_params
    from pipeline.upkeep.docs_results import write_sample_figures

    typer.echo(f"wrote {write_sample_figures(root, load_params(root / 'params.yaml'), machine)}")


@dev.command("bench-near-duplicates")
@user_errors
def bench_near_duplicates(
    originals: Annotated[int, typer.Option(min=2, help="Generated photos, each with a look-alike.")] = 60,
    copies: Annotated[int, typer.Option(min=1, help="Copies planted a row (of the first originals).")] = 30,
    seed: Annotated[int, typer.Option(help="The seed of the photos and the copies.")] = 0,
) -> None:
    """Print the near-duplicate finder's recall and precision, one row per kind of copy (cropped, resized,
    recompressed, colour-shifted, mirrored and combined) planted among generated photos and their look-alikes, with
    the audit's default settings; `weakest copy` and `closest other` are the similarities either side of the
    threshold."""
    from pipeline.config.audit import AuditParams
    from pipeline.upkeep.near_duplicates_bench import bench, bench_table

    if copies > originals:
        raise PipelineError(f"--copies {copies}: at most --originals ({originals})")
    settings = AuditParams(model="any")
    typer.echo(bench_table(bench(originals, copies, seed, settings), originals, settings.min_similarity))
