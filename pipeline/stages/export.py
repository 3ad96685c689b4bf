"""Stage `export`: a trained model as files that run without this project, checked against PyTorch.

Writes `models/<model>.onnx` (ONNX, opset `OPSET`, batch axis of any size, the preprocessing in its metadata) and
`models/<model>.pt2` (the `torch.export` program it was translated from). Both take preprocessed inputs as the
preprocess stage stores them (uint8 images, or a table's float rows) and return class probabilities: scaling,
normalisation, the temperature evaluate fitted (`models/<model>.calibration.json`) and sigmoid or softmax are inside
(`pipeline.inference.exporting`).

Parity: on the dataset's test split (its first `PARITY_SAMPLES` inputs, in batches of `BATCH_SIZE`, the last one
smaller), ONNX Runtime (through `OnnxBackend`, as a deployment runs it) and the saved program, each read back from its
file, give the probabilities PyTorch gives, within `TOLERANCE`; the largest difference and the top-1 agreement go to
`metrics/<model>/export.json` (only these: each key is a column of `dvc exp show`; the opset and format version are
in the ONNX file's metadata). Beyond it the stage fails, naming the model and the figures, and writes nothing. The
split is shuffled, so its first inputs are a sample of every class; capping them keeps the stage's time bounded (three
forward passes: VGG16 and ResNet-18 on the whole sample test split would add over a minute to `dvc repro`, and a
translation error shows on any input).
"""

from typing import Any

import numpy as np
import onnx
import torch

from pipeline.core.atomic import atomic_path, write_json
from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths
from pipeline.core.runtime import Normalization
from pipeline.models.forward import predict_logits
from pipeline.data.store import DatasetMeta, load_meta, load_split
from pipeline.inference.backend import Preprocessing
from pipeline.inference.exporting import (
    OPSET,
    InferenceGraph,
    export_program,
    onnx_model,
    program_probabilities,
)
from pipeline.inference.onnx_backend import OnnxBackend
from pipeline.inference.onnx_metadata import ExportInfo
from pipeline.models.calibration import temperature_of
from pipeline.models.file import SavedModel, load_model
from pipeline.models.outputs import probabilities
from pipeline.stages.command import stage_command

PARITY_SAMPLES = 64
BATCH_SIZE = 48  # two batches of other sizes (48 and 16): the batch axis of any size is checked
TOLERANCE = 1e-4


def export(model_name: str, paths: Paths) -> dict[str, Any]:
    """Export the saved model to ONNX and a torch.export program; returns export.json's figures."""
    model, saved = load_model(paths.model_file(model_name))
    temperature = temperature_of(paths.model_file(model_name))
    meta = load_meta(paths, saved.dataset)
    inputs = load_split(paths, saved.dataset, "test").inputs[:PARITY_SAMPLES]
    _check_data(model_name, saved, meta, inputs, paths)
    normalization = Normalization.from_stats(saved.normalization)
    logits = predict_logits(model, inputs, BATCH_SIZE, torch.device("cpu"), normalization)
    expected = probabilities(logits / temperature).numpy()
    graph = InferenceGraph(model, normalization, temperature)
    program = export_program(graph, np.zeros((2, *inputs.shape[1:]), inputs.dtype))
    info = export_info(model_name, saved, meta, temperature)
    with atomic_path(paths.onnx_file(model_name)) as onnx_file, atomic_path(paths.program_file(model_name)) as pt2:
        onnx.save(onnx_model(program, info), onnx_file)
        torch.export.save(program, pt2)
        report = {
            "onnx": agreement(expected, OnnxBackend(onnx_file, batch_size=BATCH_SIZE).probabilities(inputs)),
            "program": agreement(expected, program_probabilities(torch.export.load(pt2), inputs, BATCH_SIZE)),
            "samples": len(inputs),
        }
        check_parity(model_name, report)
    write_json(paths.export_metrics(model_name), report)
    return report


def export_info(model_name: str, saved: SavedModel, meta: DatasetMeta, temperature: float = 1.0) -> ExportInfo:
    """The ONNX metadata of a saved model: the preprocessing its file records (a table's: its size, normalisation and
    classes, and its features from the preprocessed data's meta.json), a timm backbone's own preprocessing, and the
    calibration's temperature the graph applies."""
    normalization = saved.normalization
    preprocessing = saved.image_preprocessing() if not saved.is_table else Preprocessing(
        size=saved.size,
        color=None,
        resize=None,
        normalize=normalization.normalize,
        mean=list(normalization.mean),
        std=list(normalization.std),
        classes=list(saved.classes),
    )
    return ExportInfo(
        preprocessing=preprocessing,
        model=model_name,
        arch=saved.arch,
        dataset=saved.dataset,
        kind="table" if meta.is_table else "images",
        features=tuple(meta.features) if meta.is_table else (),
        opset=OPSET,
        backbone=saved.backbone,
        temperature=temperature,
    )


def agreement(expected: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    """The largest absolute difference of any class probability, and the share of inputs whose top class agrees."""
    same_top = expected.argmax(1) == actual.argmax(1)
    return {
        "max_abs_diff": float(np.abs(expected - actual).max(initial=0.0)),
        "top1_agreement": float(same_top.mean()) if len(same_top) else 1.0,
    }


def check_parity(model_name: str, report: dict[str, Any]) -> None:
    """An error naming the model and the figures if either exported file strays beyond the tolerance (or gives NaN)."""
    runs = {"ONNX Runtime": report["onnx"], "the torch.export program": report["program"]}
    if all(figures["max_abs_diff"] <= TOLERANCE for figures in runs.values()):
        return
    found = "; ".join(
        f"{name}: max |difference| {figures['max_abs_diff']:.3g}, top-1 agreement {figures['top1_agreement']:.4f}"
        for name, figures in runs.items()
    )
    raise PipelineError(
        f"{model_name}: the exported model disagrees with PyTorch on the {report['samples']} test inputs beyond "
        f"{TOLERANCE:g} ({found}); nothing was written"
    )


def _check_data(model_name: str, saved: SavedModel, meta: DatasetMeta, inputs: np.ndarray, paths: Paths) -> None:
    """The preprocessed data must be what the model was trained on: the same classes and input shape."""
    size, channels = saved.size, saved.channels
    shape = (channels,) if meta.is_table else (size, size, channels)
    if meta.classes != saved.classes or inputs.shape[1:] != shape:
        raise PipelineError(
            f"{model_name}: the model was trained on {saved.dataset} with classes {saved.classes} and inputs "
            f"{shape}, but {paths.processed_dir(saved.dataset)} now has {meta.classes} and {inputs.shape[1:]}; "
            f"run the train stage again: `dvc repro train@{model_name}`"
        )


def export_named(model: str) -> dict[str, Any]:
    """Export the model named, as its command does (it reads the model file, not params); returns the figures."""
    return export(model, Paths())


if __name__ == "__main__":
    stage_command(export_named, reads_params=False)
