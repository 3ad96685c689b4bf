"""Stage `evaluate`: score a trained model on its dataset's test split.

Writes `metrics/<model>/test.json` (accuracy, loss, macro-averaged precision, recall and F1) and, for
`dvc plots show`, the per-class precision, recall, F1 and support, the test predictions as a confusion matrix, and
a grid of misclassified test images.
"""

import json

import numpy as np
import torch

from pipeline.atomic import write_json, write_text
from pipeline.checkpoint import load_model
from pipeline.models import loss, probabilities
from pipeline.paths import Paths
from pipeline.plots import misclassified_grid, save_png
from pipeline.preprocess import load_split
from pipeline.runtime import Normalization, pick_device, place, predict

BATCH_SIZE = 256


def evaluate(model_name: str, paths: Paths, device_name: str = "auto") -> dict:
    """Score the saved model on the test split; returns test.json's metrics and the per-class figures."""
    model, saved = load_model(paths.model_file(model_name))
    device = pick_device(device_name, key="--device")
    test = load_split(paths, saved["dataset"], "test")
    normalization = Normalization.from_meta(saved["normalization"])
    logits = predict(place(model, device), test.images, BATCH_SIZE, device, normalization)
    predicted = probabilities(logits).argmax(1).numpy()
    classes = saved["classes"]
    per_class, macro = classification_metrics(test.labels, predicted, classes)
    metrics = {
        "accuracy": float(np.mean(predicted == test.labels)),
        "loss": loss(logits, torch.from_numpy(test.labels)).item(),
        "samples": len(test.labels),
        "macro": macro,
    }
    write_json(paths.test_metrics(model_name), metrics)
    write_json(paths.per_class(model_name), [{"class": name, **figures} for name, figures in per_class.items()])
    _write_confusion(paths, model_name, test.labels, predicted, classes)
    figure = misclassified_grid(test.images, test.labels, predicted, classes, title=f"{model_name}: misclassified")
    save_png(figure, paths.misclassified(model_name))
    return {**metrics, "per_class": per_class}


def classification_metrics(actual: np.ndarray, predicted: np.ndarray, classes: list[str]) -> tuple[dict, dict]:
    """Per-class precision, recall, F1 and support, and their macro averages (0 where undefined)."""
    counts = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(counts, (actual, predicted), 1)
    hits = np.diag(counts).astype(float)
    support = counts.sum(axis=1)
    precision = _ratio(hits, counts.sum(axis=0))
    recall = _ratio(hits, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    per_class = {
        name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, p, r, f, s in zip(classes, precision, recall, f1, support, strict=True)
    }
    macro = {"precision": float(np.mean(precision)), "recall": float(np.mean(recall)), "f1": float(np.mean(f1))}
    return per_class, macro


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator elementwise, 0 where the denominator is 0 (a class never predicted or present)."""
    return np.divide(numerator, denominator, out=np.zeros(len(numerator)), where=denominator > 0)


def _write_confusion(paths: Paths, model_name: str, actual: np.ndarray, predicted: np.ndarray, classes) -> None:
    records = [{"actual": classes[a], "predicted": classes[p]} for a, p in zip(actual, predicted, strict=True)]
    write_text(paths.confusion(model_name), json.dumps(records, indent=0) + "\n")
