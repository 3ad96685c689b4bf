"""Stage `evaluate`: score a trained model on its dataset's test split.

With `calibrate` (`evaluate.calibrate`) it first fits the model's temperature on the validation split
(`pipeline.analysis.calibration`: applied only where it carries over to validation images it was not fitted
on) and writes it beside the model file, `models/<model>.calibration.json` (`pipeline.models.calibration`), which predict,
serve and the export apply; off, or not carried over, the file holds a temperature of 1.

Writes `metrics/<model>/test.json` (accuracy, loss, expected calibration error, macro-averaged precision, recall
and F1 of the calibrated probabilities, the test-time augmentation they were measured with, and `calibration`: the
temperature and the accuracy, NLL and ECE before and after) and, for `dvc plots show`, the per-class precision,
recall, F1 and support, the test predictions as a confusion matrix, a reliability diagram, a grid of misclassified
test images, the test samples of highest loss (`top_losses.png`) and the most confused class pairs
(`confused.json`); and the model card, `models/<model>.card.md` (`pipeline.analysis.card`). With `tta` every
figure is of the class probabilities averaged over the views (`pipeline.inference.tta`).
"""

import json
import sys
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pipeline.analysis.card import (
    CardFacts,
    class_counts,
    confusion_counts,
    model_card,
    worst_confusions,
)
from pipeline.analysis.diagnostics import (
    expected_calibration_error,
    reliability_bins,
    sample_losses,
)
from pipeline.analysis.calibration import HIGHEST, LOWEST, HeldOut, fit_temperature, held_out_check
from pipeline.analysis.metrics import classification_metrics
from pipeline.analysis.gradcam import heatmaps
from pipeline.analysis.plots import (
    Explainer,
    TopLosses,
    misclassified_grid,
    misclassified_scatter,
    reliability_diagram,
    save_png,
    top_losses_grid,
    top_losses_table,
)
from pipeline.config.datasets import DataSource
from pipeline.config.evaluation import TtaMode
from pipeline.config.params import Params
from pipeline.config.resolution import check_overrides, locked_params
from pipeline.core.atomic import write_json, write_text
from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths
from pipeline.analysis.provenance import git_commit
from pipeline.core.runtime import Normalization, pick_device, place
from pipeline.data.store import DatasetMeta, SplitArrays, load_meta, load_split
from pipeline.inference.tta import with_tta
from pipeline.models.calibration import Calibration, Tempered, file_sha256, save_calibration
from pipeline.models.file import SavedModel, load_model
from pipeline.models.forward import predict_logits
from pipeline.analysis.measure import SplitScores, measure
from pipeline.stages.command import stage_command

BATCH_SIZE = 256
TOP_LOSSES = 9  # fastai's plot_top_losses shows 9 by default
CONFUSED_PAIRS = 20


def evaluate(
    model_name: str,
    paths: Paths,
    device_name: str = "auto",
    data: Mapping[str, DataSource] | None = None,
    tta: TtaMode = "none",
    gradcam: bool = False,
    calibrate: bool = True,
) -> dict:
    """Calibrate the saved model on the validation split, score it on the test split and write its card; returns
    test.json's metrics and the per-class figures. `data` (params' `data` blocks) gives the card the dataset's
    source; without it the card says it is not known. `tta` (`models.<model>.evaluate.tta`): the test-time
    augmentation every figure is measured with. `gradcam` (`evaluate.gradcam`): the image grids show each image under
    its Grad-CAM map of the predicted class. `calibrate` (`evaluate.calibrate`): fit the temperature (else 1)."""
    model_file = paths.model_file(model_name)
    model, saved = load_model(model_file)
    device = pick_device(device_name, key="--device")
    test = load_split(paths, saved.dataset, "test")
    if tta != "none" and saved.is_table:
        raise PipelineError(f"models.{model_name}.evaluate.tta: {tta!r} flips and shifts images; a table gets none")
    normalization = Normalization.from_stats(saved.normalization)
    val = load_split(paths, saved.dataset, "val")
    calibration = _calibration(place(model, device), model_file, val, device, normalization, calibrate)
    save_calibration(model_file, calibration)
    before = measure(place(with_tta(model, tta), device), test, BATCH_SIZE, device, normalization)
    tempered = Tempered(model, calibration.temperature)
    after = before if not calibration.applied else measure(
        place(with_tta(tempered, tta), device), test, BATCH_SIZE, device, normalization
    )
    class_probabilities = after.probabilities
    predicted = class_probabilities.argmax(1)
    per_class, macro = classification_metrics(test.labels, predicted, saved.classes)
    figures = {"before": _calibration_figures(before), "after": _calibration_figures(after)}
    metrics = {
        "accuracy": after.accuracy,
        "loss": after.loss,
        "ece": figures["after"]["ece"],
        "samples": len(test.labels),
        "macro": macro,
        "epoch": saved.epoch,
        "kept": saved.kept,
        "tta": tta,
        "calibration": {
            "temperature": calibration.temperature,
            "fitted_temperature": calibration.fitted_temperature,
            "applied": calibration.applied,
            **figures,
        },
        **({} if saved.stopped_at is None else {"stopped_at": saved.stopped_at}),
    }
    write_json(paths.test_metrics(model_name), metrics)
    write_json(paths.per_class(model_name), [{"class": name, **figures} for name, figures in per_class.items()])
    classes, meta = saved.classes, load_meta(paths, saved.dataset)
    features = meta.features  # a table's column names (images have none)
    confusion = confusion_counts(test.labels, predicted, len(classes))
    explain = _explainer(model, test, predicted, normalization) if gradcam else None
    eces = (figures["before"]["ece"], figures["after"]["ece"])
    _write_plots(paths, model_name, features, test, (before, after), eces, predicted, classes, explain)
    _write_errors(paths, model_name, features, test, class_probabilities, classes, confusion, explain)
    source = data[saved.dataset].source if data and saved.dataset in data else None
    _write_card(paths, model_name, saved, meta, metrics, per_class, test.labels, confusion, source)
    return {**metrics, "per_class": per_class}


def _calibration(
    model: nn.Module,
    model_file: Path,
    val: SplitArrays,
    device: torch.device,
    normalization: Normalization | None,
    calibrate: bool,
) -> Calibration:
    """The temperature fitted to the validation split's logits of the model alone (what predict, serve and the ONNX
    file run), applied where it carries over to validation images it was not fitted on; 1 when `calibrate` is off.
    Prints what was decided and why."""
    logits = predict_logits(model, val.inputs, BATCH_SIZE, device, normalization).cpu()
    labels = torch.from_numpy(val.labels)
    fitted = fit_temperature(logits, labels) if calibrate else 1.0
    check = held_out_check(logits, labels)
    applied = calibrate and fitted != 1.0 and check.carries_over
    print(_calibration_line(fitted, len(labels), check, applied, calibrate), file=sys.stderr, flush=True)
    return Calibration(
        temperature=fitted if applied else 1.0,
        applied=applied,
        fitted_temperature=fitted,
        samples=len(labels),
        held_out=asdict(check),
        model_sha256=file_sha256(model_file),
    )


def _calibration_line(fitted: float, samples: int, check: HeldOut, applied: bool, calibrate: bool) -> str:
    """What calibration decided, with the held-out figures that decided it."""
    if not calibrate:
        return "calibration: off (evaluate.calibrate: false), temperature 1"
    if fitted == 1.0:
        return (
            f"calibration: no temperature between {LOWEST:g} and {HIGHEST:g} does better than 1 on the {samples} "
            "validation images (or every one is classified right: no best temperature); temperature 1"
        )
    figures = (
        f"held out, validation NLL {check.nll_as_trained:.4f} -> {check.nll_calibrated:.4f} (standard error "
        f"{check.standard_error:.4f}), ECE {check.ece_as_trained:.3f} -> {check.ece_calibrated:.3f}"
    )
    verdict = "applied" if applied else "not applied (it does not carry over to held-out images): temperature 1"
    return f"calibration: temperature {fitted:.3f} fitted on {samples} validation images; {figures}; {verdict}"


def _calibration_figures(scored: SplitScores) -> dict[str, float]:
    """Accuracy, NLL and ECE of a split's probabilities: what calibration changes (the NLL, the ECE) and keeps."""
    return {
        "accuracy": scored.accuracy,
        "nll": scored.loss,
        "ece": expected_calibration_error(scored.probabilities, scored.labels),
    }


def _explainer(
    model: nn.Module, test: SplitArrays, predicted: np.ndarray, normalization: Normalization | None
) -> Explainer:
    """Grad-CAM maps of the predicted class for the test images at the indices a grid shows."""
    return lambda shown: heatmaps(model, test.inputs[shown], predicted[shown], normalization)


def _write_card(
    paths: Paths,
    model_name: str,
    saved: SavedModel,
    meta: DatasetMeta,
    metrics: dict,
    per_class: dict,
    actual: np.ndarray,
    confusion: np.ndarray,
    source: str | None,
) -> None:
    """models/<model>.card.md, from what evaluate has in hand: the dataset's meta.json and its split labels too."""
    dataset, classes = saved.dataset, saved.classes
    counts = {name: class_counts(load_split(paths, dataset, name).labels, classes) for name in ("train", "val")}
    facts = CardFacts(
        name=model_name,
        saved=saved,
        metrics=metrics,
        per_class=per_class,
        confusion=confusion,
        meta=meta,
        counts={**counts, "test": class_counts(actual, classes)},
        source=source,
        commit=git_commit(paths.root),
        audit=_audit_summary(paths, dataset),
    )
    write_text(paths.model_card(model_name), model_card(facts))


def _audit_summary(paths: Paths, dataset: str) -> dict | None:
    """The dataset's audit summary, if `audit@<dataset>` has run."""
    file = paths.metrics_dir(dataset) / "audit" / "summary.json"
    return json.loads(file.read_text()) if file.is_file() else None


def _write_plots(
    paths: Paths,
    model_name: str,
    features: list[str],
    test: SplitArrays,
    scored: tuple[SplitScores, SplitScores],
    eces: tuple[float, float],
    predicted: np.ndarray,
    classes: list[str],
    explain: Explainer | None,
) -> None:
    """The confusion matrix, the reliability diagram (before and after calibration, with their ECEs `eces`, or one
    panel when the temperature is 1) and the misclassified test images (under heat maps with `explain`)."""
    _write_confusion(paths, model_name, test.labels, predicted, classes)
    (before, after), (ece_before, ece_after) = scored, eces
    shown = [("before calibration", before, ece_before), ("after calibration", after, ece_after)]
    if after is before:
        shown = [("not calibrated (temperature 1)", after, ece_after)]
    panels = [(label, reliability_bins(s.probabilities, s.labels), ece) for label, s, ece in shown]
    save_png(reliability_diagram(panels, f"{model_name}: calibration on the test split"), paths.reliability(model_name))
    title = f"{model_name}: misclassified"
    if test.inputs.ndim == 2:
        figure = misclassified_scatter(test.inputs, test.labels, predicted, classes, features, title)
    else:
        figure = misclassified_grid(test.inputs, test.labels, predicted, classes, title=title, explain=explain)
    save_png(figure, paths.misclassified(model_name))


def _write_errors(
    paths: Paths,
    model_name: str,
    features: list[str],
    test: SplitArrays,
    class_probabilities: np.ndarray,
    classes: list[str],
    confusion: np.ndarray,
    explain: Explainer | None,
) -> None:
    """fastai's plot_top_losses and most_confused: the test samples of highest loss (images as a grid, table rows
    as a table) and the most confused (actual, predicted) pairs, most first, as plot rows."""
    losses = sample_losses(class_probabilities, test.labels)
    worst = np.argsort(-losses, kind="stable")[:TOP_LOSSES]
    title = f"{model_name}: the {len(worst)} test samples of highest loss"
    top = TopLosses(test.labels, class_probabilities, losses, worst, classes)
    if test.inputs.ndim == 2:
        figure = top_losses_table(test.inputs, features, top, title)
    else:
        figure = top_losses_grid(test.inputs, top, title, explain)
    save_png(figure, paths.top_losses(model_name))
    pairs = worst_confusions(confusion, classes, top=CONFUSED_PAIRS)
    write_json(paths.confused(model_name), [{"pair": f"{p['actual']} → {p['predicted']}", **p} for p in pairs])


def _write_confusion(paths: Paths, model_name: str, actual: np.ndarray, predicted: np.ndarray, classes) -> None:
    records = [{"actual": classes[a], "predicted": classes[p]} for a, p in zip(actual, predicted, strict=True)]
    write_text(paths.confusion(model_name), json.dumps(records, indent=0) + "\n")


def evaluate_named(model: str, params: Params, device: str = "auto") -> dict:
    """Evaluate the model named on `device`, with its `evaluate` block's test-time augmentation and Grad-CAM, as its
    command does; returns the figures. A changed `evaluate.*` key that the model's own block shadows stops it first,
    naming the key to set."""
    paths = Paths()
    check_overrides(params, model, locked_params(paths.lock_file(), f"evaluate@{model}"))
    chosen = params.model(model).evaluate
    return evaluate(
        model, paths, device, data=params.data, tta=chosen.tta, gradcam=chosen.gradcam, calibrate=chosen.calibrate
    )


if __name__ == "__main__":
    stage_command(evaluate_named)
