"""Stage `evaluate`: score a trained model on its dataset's test split.

Writes `metrics/<model>/test.json` (accuracy, loss, expected calibration error, macro-averaged precision, recall
and F1) and, for `dvc plots show`, the per-class precision, recall, F1 and support, the test predictions as a
confusion matrix, a reliability diagram, and a grid of misclassified test images.
"""

import json

import numpy as np

from pipeline.analysis.diagnostics import expected_calibration_error, reliability_bins
from pipeline.analysis.metrics import classification_metrics
from pipeline.analysis.plots import (
    misclassified_grid,
    misclassified_scatter,
    reliability_diagram,
    save_png,
)
from pipeline.core.atomic import write_json, write_text
from pipeline.core.paths import Paths
from pipeline.core.runtime import Normalization, pick_device, place
from pipeline.data.store import SplitArrays, load_meta, load_split
from pipeline.models.file import load_model
from pipeline.training.measure import measure

BATCH_SIZE = 256


def evaluate(model_name: str, paths: Paths, device_name: str = "auto") -> dict:
    """Score the saved model on the test split; returns test.json's metrics and the per-class figures."""
    model, saved = load_model(paths.model_file(model_name))
    device = pick_device(device_name, key="--device")
    test = load_split(paths, saved["dataset"], "test")
    normalization = Normalization.from_meta(saved["normalization"])
    scored = measure(place(model, device), test, BATCH_SIZE, device, normalization)
    class_probabilities = scored.probabilities
    predicted = class_probabilities.argmax(1)
    per_class, macro = classification_metrics(test.labels, predicted, saved["classes"])
    metrics = {
        "accuracy": scored.accuracy,
        "loss": scored.loss,
        "ece": expected_calibration_error(class_probabilities, test.labels),
        "samples": len(test.labels),
        "macro": macro,
        "epoch": saved["epoch"],
        "kept": saved["kept"],
    }
    write_json(paths.test_metrics(model_name), metrics)
    write_json(paths.per_class(model_name), [{"class": name, **figures} for name, figures in per_class.items()])
    classes = saved["classes"]
    _write_plots(paths, model_name, saved["dataset"], test, class_probabilities, predicted, classes, metrics["ece"])
    return {**metrics, "per_class": per_class}


def _write_plots(
    paths: Paths,
    model_name: str,
    dataset: str,
    test: SplitArrays,
    class_probabilities: np.ndarray,
    predicted: np.ndarray,
    classes: list[str],
    ece: float,
) -> None:
    """The confusion matrix, the reliability diagram and the misclassified test images."""
    _write_confusion(paths, model_name, test.labels, predicted, classes)
    bins = reliability_bins(class_probabilities, test.labels)
    title = f"{model_name}: calibration on the test split"
    save_png(reliability_diagram(bins, ece, title), paths.reliability(model_name))
    title = f"{model_name}: misclassified"
    if test.inputs.ndim == 2:
        names = load_meta(paths, dataset)["features"]
        figure = misclassified_scatter(test.inputs, test.labels, predicted, classes, names, title)
    else:
        figure = misclassified_grid(test.inputs, test.labels, predicted, classes, title=title)
    save_png(figure, paths.misclassified(model_name))


def _write_confusion(paths: Paths, model_name: str, actual: np.ndarray, predicted: np.ndarray, classes) -> None:
    records = [{"actual": classes[a], "predicted": classes[p]} for a, p in zip(actual, predicted, strict=True)]
    write_text(paths.confusion(model_name), json.dumps(records, indent=0) + "\n")
