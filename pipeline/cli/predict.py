"""`pipeline predict`: a trained model's classes for images that were never part of the pipeline, and its score on
them given their labels. `pipeline.cli.main` adds it to the `pipeline` command."""

from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.common import DEFAULT_PARAMS, ParamsFile, load, user_errors
from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths

MODEL_SUFFIXES = (".pt", ".onnx")


@user_errors
def predict(
    model: Annotated[
        str,
        typer.Argument(help="A model under `models` in params.yaml (models/<name>.pt), or a model file (.pt; .onnx "
                       "with --backend onnx)."),
    ],
    paths: Annotated[
        list[Path], typer.Argument(help="Image files, folders (searched at any depth), .zip / .tar(.gz) archives.")
    ],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Also write the table to this CSV file.")] = None,
    top: Annotated[int, typer.Option(min=1, help="Show the K most probable classes (class_2, ... columns).")] = 1,
    labels: Annotated[
        Path | None,
        typer.Option(help="True classes: a folder (zip, tar) of class folders, or a CSV of path,label rows; "
                     "prints accuracy and the confusion counts."),
    ] = None,
    backend: Annotated[str, typer.Option(help="torch (the .pt file) or onnx (the exported .onnx beside it).")] = "torch",
    device: Annotated[str, typer.Option(help="auto (CUDA when present), cpu or cuda; torch backend only.")] = "auto",
    batch_size: Annotated[int, typer.Option(min=1, help="Images decoded and scored at a time.")] = 64,
    explain: Annotated[
        Path | None,
        typer.Option(help="Write each image beside its Grad-CAM heat map of the predicted class into this folder "
                     "(<image path>.gradcam.png; convolutional models, torch backend)."),
    ] = None,
    params: ParamsFile = DEFAULT_PARAMS,
) -> None:
    """Predict the class of every image with a trained model, using the preprocessing recorded in the model file
    (size, colour, resize, normalisation), never today's params.yaml. Unusable files are listed and skipped."""
    from pipeline.inference.inputs import Inputs
    from pipeline.inference.labels import read_labels
    from pipeline.inference.output import calibration_text, predictions_text, render_score, table, write_csv
    from pipeline.inference.predict import check_top, open_backend, predict_items, score

    scorer = open_backend(backend, model_file(model, params), device, batch_size)
    check_top(top, scorer.preprocessing.classes)
    truth = read_labels(labels, scorer.preprocessing.classes) if labels is not None else None
    writer = _explanation_writer(scorer, explain)
    with Inputs(paths) as inputs:
        predictions = predict_items(scorer, inputs, batch_size, total=len(inputs), on_batch=writer)
        ignored = inputs.ignored
    rows = table(predictions, top, truth)
    typer.echo(predictions_text(predictions, rows, ignored), nl=False)
    typer.echo(calibration_text(scorer.temperature), nl=False)
    if truth is not None:
        typer.echo(render_score(score(predictions, truth), predictions.classes), nl=False)
    if out is not None:
        write_csv(out, rows)
        typer.echo(f"wrote {out}")
    if writer is not None:
        typer.echo(f"wrote {len(writer.written)} Grad-CAM figures to {explain}/")


def _explanation_writer(scorer, folder: Path | None):
    """`--explain`'s writer of heat-map figures, or None without the option."""
    if folder is None:
        return None
    from pipeline.inference.explain import ExplanationWriter

    return ExplanationWriter(scorer, folder)


def model_file(model: str, params: Path) -> Path:
    """MODEL as a file: a path to a model file as it is, else a model named in the params file, models/<name>.pt."""
    path = Path(model)
    if path.suffix in MODEL_SUFFIXES or path.is_file():
        return path
    models = load(params, None).models
    if model not in models:
        raise PipelineError(
            f"MODEL: {model!r} is neither a model file nor a model under `models` in {params} ({', '.join(models)}); "
            "give a .pt file or one of those names"
        )
    return Paths().model_file(model)
