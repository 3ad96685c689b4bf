"""Predictions for many images, the core of `pipeline predict` and of the server.

Each image is made into the input training saw by `prepared`: the header checks, decoding and squaring of the
preprocess stage (`pipeline.data.images`), with the size, colour and resize policy the model records, never those of
today's params.yaml. A file that is not a usable image is kept aside with its reason; the others are scored in
batches by a backend (`pipeline.inference.backend`: PyTorch, or ONNX Runtime with `--backend onnx`). Given labels,
`score` adds accuracy and the confusion counts (scikit-learn).
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix
from tqdm import tqdm

from pipeline.core.errors import PipelineError
from pipeline.core.preprocessing import Preprocessing
from pipeline.data.images import UNDECODABLE, decoded, fit_square, refusal
from pipeline.inference.backend import Backend
from pipeline.inference.inputs import Item

BATCH_SIZE = 64
BAR_FROM = 2 * BATCH_SIZE  # a progress bar from this many files on (on a terminal)
BACKENDS = ("torch", "onnx")
BatchCallback = Callable[[list[str], np.ndarray, np.ndarray], None]  # names, uint8 images, class probabilities


@dataclass(frozen=True)
class Prediction:
    """One image's class probabilities (in the model's class order), with its name and key (see `inputs.Item`)."""

    name: str
    key: str
    probabilities: np.ndarray


@dataclass
class Predictions:
    """What a run predicted, in input order, and the files skipped, each with its reason."""

    classes: list[str]
    predicted: list[Prediction] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Score:
    """The predicted images that have a label, scored: accuracy, the confusion counts (rows: actual class, columns:
    predicted, in the model's class order), how many were scored and how many predicted images had no label."""

    accuracy: float
    confusion: np.ndarray
    labelled: int
    unlabelled: int


def open_backend(kind: str, model_file: Path, device: str = "auto", batch_size: int = BATCH_SIZE) -> Backend:
    """The backend `kind` (torch or onnx) for a model file: PyTorch runs the .pt file on `device`, `batch_size`
    images at a time; ONNX Runtime runs the .onnx file beside it (or the .onnx file given), which the export must
    have written."""
    if kind not in BACKENDS:
        raise PipelineError(f"--backend: {kind!r} is not one of {', '.join(BACKENDS)}")
    if kind == "torch":
        if model_file.suffix == ".onnx":
            raise PipelineError(f"{model_file}: an ONNX file; predict with --backend onnx, or give the .pt model")
        from pipeline.inference.torch_backend import TorchBackend

        return TorchBackend(model_file, device, batch_size)
    onnx_file = model_file.with_suffix(".onnx")
    if not onnx_file.is_file():
        raise PipelineError(
            f"--backend onnx: {onnx_file} not found; export the model to ONNX first (`dvc repro export@"
            f"{onnx_file.stem}`), or predict with --backend torch"
        )
    try:
        from pipeline.inference.onnx_backend import OnnxBackend
    except ModuleNotFoundError as exc:
        if exc.name != "pipeline.inference.onnx_backend":
            raise
        raise PipelineError(
            "--backend onnx: this version of the pipeline has no ONNX backend; predict with --backend torch"
        ) from None
    return OnnxBackend(onnx_file)


def prepared(data: bytes, name: str, preprocessing: Preprocessing) -> tuple[np.ndarray | None, str]:
    """The image `name` as preprocess would have stored it for this model, a uint8 (size, size, channels) array; or
    None and why it cannot be used (empty, truncated, not an image, not the format its name says, ...)."""
    reason = refusal(data, name)
    if reason:
        return None, reason
    image = decoded(data, preprocessing.color)
    if image is None:
        return None, UNDECODABLE
    return fit_square(image, preprocessing.size, preprocessing.resize), ""


def predict_items(
    backend: Backend,
    items: Iterable[Item],
    batch_size: int = BATCH_SIZE,
    total: int = 0,
    on_batch: BatchCallback | None = None,
) -> Predictions:
    """Every item prepared and scored, `batch_size` images at a time; a progress bar on a terminal when `total` (the
    number of items) is large. `on_batch(names, images, probabilities)` sees every scored batch (`--explain`)."""
    result = Predictions(list(backend.preprocessing.classes))
    batch: list[tuple[Item, np.ndarray]] = []
    bar = tqdm(total=total, desc="predict", unit="image", disable=None if total >= BAR_FROM else True, leave=False)
    with bar:
        for item in items:
            image, reason = (None, item.reason) if item.reason else prepared(item.data, item.name, backend.preprocessing)
            if image is None:
                result.skipped.append((item.name, reason))
            else:
                batch.append((item, image))
            if len(batch) == batch_size:
                _score_batch(backend, batch, result, on_batch)
                batch = []
            bar.update()
        _score_batch(backend, batch, result, on_batch)
    return result


def _score_batch(
    backend: Backend, batch: list[tuple[Item, np.ndarray]], result: Predictions, on_batch: BatchCallback | None
) -> None:
    if not batch:
        return
    images = np.stack([image for _, image in batch])
    probabilities = backend.probabilities(images)
    if on_batch is not None:
        on_batch([item.name for item, _ in batch], images, probabilities)
    result.predicted += [
        Prediction(item.name, item.key, row) for (item, _), row in zip(batch, probabilities, strict=True)
    ]


def ranked(probabilities: np.ndarray, classes: list[str], top: int) -> list[tuple[str, float]]:
    """The `top` most probable classes with their probabilities, most probable first (ties in class order, as
    argmax breaks them)."""
    order = np.argsort(-probabilities, kind="stable")[:top]
    return [(classes[index], float(probabilities[index])) for index in order]


def check_top(top: int, classes: list[str]) -> None:
    """`--top` must be between 1 and the model's number of classes."""
    if not 1 <= top <= len(classes):
        raise PipelineError(
            f"--top {top}: the model has {len(classes)} classes ({', '.join(classes)}); give 1 to {len(classes)}"
        )


def score(predictions: Predictions, labels: dict[str, str]) -> Score:
    """Accuracy and confusion counts of the predicted images that `labels` (class by image key, every one a class of
    the model, as `pipeline.inference.labels.read_labels` gives them) labels; none labelled is an error."""
    classes = predictions.classes
    pairs = [
        (classes.index(labels[p.key]), int(np.argmax(p.probabilities))) for p in predictions.predicted if p.key in labels
    ]
    if not pairs:
        raise PipelineError(
            "--labels: none of the predicted images has a label there; give the folder the images are in (class "
            "folders), or a CSV whose paths, relative to its folder, name the images"
        )
    actual, predicted = [a for a, _ in pairs], [p for _, p in pairs]
    confusion = confusion_matrix(actual, predicted, labels=list(range(len(classes))))
    return Score(float(accuracy_score(actual, predicted)), confusion, len(pairs), len(predictions.predicted) - len(pairs))
