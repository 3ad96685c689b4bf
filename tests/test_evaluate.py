import copy
import json
import shutil

import numpy as np
import pytest
import torch

from pipeline.analysis.diagnostics import sample_losses
from pipeline.analysis.plots import (
    TopLosses,
    misclassified_grid,
    top_losses_grid,
    top_losses_table,
)
from pipeline.config.params import parse_params
from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths
from pipeline.core.runtime import Normalization
from pipeline.models.forward import predict_logits
from pipeline.data.store import load_meta, load_split
from pipeline.models.calibration import load_calibration, temperature_of
from pipeline.models.file import load_model
from pipeline.models.outputs import loss, probabilities
from pipeline.stages.evaluate import evaluate
from pipeline.stages.preprocess import preprocess
from pipeline.stages.train import train
from tests.helpers.datasets import prepare
from tests.helpers.params import TINY_IRIS, tiny_raw


@pytest.fixture(autouse=True)
def _outside_any_repo(tmp_path, monkeypatch):
    """DVCLive looks for a DVC/Git repo from the working directory and may report to Studio: give it neither."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_STUDIO_OFFLINE", "true")


@pytest.fixture(scope="module")
def evaluated(tiny_run, tmp_path_factory) -> tuple[Paths, dict]:
    """A copy of the tiny trained run (conftest's `tiny_run`) evaluated once on the CPU for the module's tests that
    only read what evaluate wrote, and what it returned."""
    paths = Paths(shutil.copytree(tiny_run[0].root, tmp_path_factory.mktemp("evaluated") / "run"))
    return paths, evaluate("catsdogs_cnn", paths, "cpu")


def _recomputed(paths: Paths) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """The test labels, predictions and logits of the saved model, divided by the temperature evaluate fitted."""
    model, _ = load_model(paths.model_file("catsdogs_cnn"))
    test = load_split(paths, "catsdogs", "test")
    with torch.no_grad():
        logits = model(torch.from_numpy(np.array(test.inputs)).permute(0, 3, 1, 2).float() / 255)
    logits = logits / temperature_of(paths.model_file("catsdogs_cnn"))
    return test.labels, probabilities(logits).argmax(1).numpy(), logits


def test_evaluate_writes_summary_metrics_and_per_class_plot_rows(evaluated):
    trained, returned = evaluated
    written = json.loads(trained.test_metrics("catsdogs_cnn").read_text())
    assert {**written, "per_class": returned["per_class"]} == returned
    assert set(written) == {"accuracy", "loss", "ece", "samples", "macro", "epoch", "kept", "tta", "calibration"}
    assert written["tta"] == "none"
    assert 0 <= written["ece"] <= 1
    assert trained.reliability("catsdogs_cnn").read_bytes().startswith(b"\x89PNG")
    assert written["samples"] == 6
    assert set(written["macro"]) == {"precision", "recall", "f1"}
    rows = json.loads(trained.per_class("catsdogs_cnn").read_text())
    assert [row["class"] for row in rows] == ["cat", "dog"]
    assert sum(row["support"] for row in rows) == 6
    assert rows[0] == {"class": "cat", **returned["per_class"]["cat"]}


def test_evaluate_fits_the_temperature_on_validation_and_reports_the_test_figures_before_and_after(evaluated):
    trained, metrics = evaluated
    model_file = trained.model_file("catsdogs_cnn")
    calibration = load_calibration(model_file)
    val = load_split(trained, "catsdogs", "val")
    model, _ = load_model(model_file)
    logits = predict_logits(model, val.inputs, 8, torch.device("cpu"), None)
    labels = torch.from_numpy(val.labels)
    assert calibration.samples == len(labels)
    assert calibration.temperature == (calibration.fitted_temperature if calibration.applied else 1.0)
    assert calibration.held_out["nll_as_trained"] == pytest.approx(loss(logits, labels).item(), rel=1e-5)
    figures = metrics["calibration"]
    assert figures["temperature"] == calibration.temperature and figures["applied"] == calibration.applied
    assert figures["after"] == {"accuracy": metrics["accuracy"], "nll": metrics["loss"], "ece": metrics["ece"]}
    assert figures["before"]["accuracy"] == figures["after"]["accuracy"]  # one temperature never reorders classes


def test_evaluate_without_calibrate_writes_a_temperature_of_one(tiny_run, tmp_path):
    paths = Paths(shutil.copytree(tiny_run[0].root, tmp_path / "run"))
    metrics = evaluate("catsdogs_cnn", paths, "cpu", calibrate=False)
    calibration = load_calibration(paths.model_file("catsdogs_cnn"))
    assert calibration.temperature == 1.0 and not calibration.applied
    assert metrics["calibration"]["before"] == metrics["calibration"]["after"]


def test_evaluate_accuracy_and_loss_match_the_saved_model(evaluated):
    trained, metrics = evaluated
    labels, predicted, logits = _recomputed(trained)
    assert metrics["accuracy"] == pytest.approx(np.mean(predicted == labels))
    assert metrics["loss"] == pytest.approx(loss(logits, torch.from_numpy(labels)).item(), rel=1e-5)


def test_confusion_records_name_the_actual_and_predicted_class_of_every_test_image(evaluated):
    trained, _ = evaluated
    records = json.loads(trained.confusion("catsdogs_cnn").read_text())
    labels, predicted, _ = _recomputed(trained)
    classes = ["cat", "dog"]
    assert records == [{"actual": classes[a], "predicted": classes[p]} for a, p in zip(labels, predicted, strict=True)]


def test_evaluating_a_model_that_was_never_trained_says_to_train(prepared):
    with pytest.raises(PipelineError, match=r"catsdogs_cnn\.pt: model not found; run the train stage"):
        evaluate("catsdogs_cnn", prepared, "cpu")


def test_an_unreadable_model_file_is_an_error(prepared):
    prepared.model_file("catsdogs_cnn").parent.mkdir(parents=True)
    prepared.model_file("catsdogs_cnn").write_bytes(b"not a model")
    with pytest.raises(PipelineError, match="not a readable model file"):
        evaluate("catsdogs_cnn", prepared, "cpu")


def test_evaluate_on_cuda_without_it_names_the_device_option(trained, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(PipelineError, match="^--device: 'cuda'"):
        evaluate("catsdogs_cnn", trained, "cuda")


def test_evaluate_draws_the_misclassified_test_images(evaluated):
    trained, _ = evaluated
    image = trained.misclassified("catsdogs_cnn")
    assert image.read_bytes().startswith(b"\x89PNG")


def test_misclassified_grid_captions_true_and_predicted_classes():
    images = np.zeros((4, 8, 8, 3), np.uint8)
    figure = misclassified_grid(images, np.array([0, 1, 2, 0]), np.array([0, 2, 2, 1]), ["a", "b", "c"], "m")
    titles = [axis.get_title() for axis in figure.axes if axis.get_title()]
    assert titles == ["b\n-> c", "a\n-> b"]
    assert "2 of 4" in figure.texts[0].get_text()


def test_a_model_trained_on_normalised_data_is_evaluated_on_normalised_data(prepared):
    params = parse_params(tiny_raw(**{"preprocess.catsdogs.normalize": True}))
    preprocess("catsdogs", params.preprocess["catsdogs"], prepared)
    train("catsdogs_cnn", params, prepared)
    metrics = evaluate("catsdogs_cnn", prepared)
    model, saved = load_model(prepared.model_file("catsdogs_cnn"))
    normalization = Normalization.from_stats(load_meta(prepared, "catsdogs"))
    assert normalization is not None and Normalization.from_stats(saved.normalization) == normalization
    test = load_split(prepared, "catsdogs", "test")
    logits = predict_logits(model, test.inputs, 4, torch.device("cpu"), normalization)
    logits = logits / temperature_of(prepared.model_file("catsdogs_cnn"))
    assert metrics["loss"] == pytest.approx(loss(logits, torch.from_numpy(test.labels)).item(), rel=1e-5)


def test_evaluate_with_flip_tta_scores_the_mean_of_the_plain_and_mirrored_calibrated_probabilities(trained):
    metrics = evaluate("catsdogs_cnn", trained, "cpu", tta="flip")
    assert json.loads(trained.test_metrics("catsdogs_cnn").read_text())["tta"] == "flip"
    model, _ = load_model(trained.model_file("catsdogs_cnn"))
    temperature = temperature_of(trained.model_file("catsdogs_cnn"))
    test = load_split(trained, "catsdogs", "test")
    mirrored = np.ascontiguousarray(test.inputs[:, :, ::-1])  # NHWC: the width axis
    views = [predict_logits(model, inputs, 4, torch.device("cpu")) / temperature for inputs in (test.inputs, mirrored)]
    mean = sum(probabilities(logits) for logits in views) / 2
    labels = torch.from_numpy(test.labels)
    assert metrics["accuracy"] == pytest.approx(float((mean.argmax(1) == labels).float().mean()))
    nll = -torch.log(mean[torch.arange(len(labels)), labels]).mean().item()
    assert metrics["loss"] == pytest.approx(nll, rel=1e-5)
    assert "test-time augmentation `flip`" in trained.model_card("catsdogs_cnn").read_text()


def test_a_table_model_gets_its_top_losses_as_a_table_and_refuses_tta_naming_its_key(paths):
    params = parse_params(copy.deepcopy(TINY_IRIS))
    train("iris_mlp", params, prepare(paths, params, "iris"))
    with pytest.raises(PipelineError, match=r"^models\.iris_mlp\.evaluate\.tta: 'flip' flips and shifts images"):
        evaluate("iris_mlp", paths, "cpu", tta="flip")
    evaluate("iris_mlp", paths, "cpu")
    assert paths.top_losses("iris_mlp").read_bytes().startswith(b"\x89PNG")
    assert isinstance(json.loads(paths.confused("iris_mlp").read_text()), list)


def test_evaluate_writes_the_most_confused_pairs_as_the_card_counts_them(evaluated):
    trained, _ = evaluated
    rows = json.loads(trained.confused("catsdogs_cnn").read_text())
    records = json.loads(trained.confusion("catsdogs_cnn").read_text())
    wrong = [(r["actual"], r["predicted"]) for r in records if r["actual"] != r["predicted"]]
    assert {(row["actual"], row["predicted"]): row["count"] for row in rows} == {
        pair: wrong.count(pair) for pair in set(wrong)
    }
    assert [row["count"] for row in rows] == sorted((row["count"] for row in rows), reverse=True)
    for row in rows:
        assert row["pair"] == f"{row['actual']} → {row['predicted']}"
        support = sum(r["actual"] == row["actual"] for r in records)
        assert row["share"] == pytest.approx(row["count"] / support)
    assert trained.top_losses("catsdogs_cnn").read_bytes().startswith(b"\x89PNG")


def test_top_losses_are_captioned_actual_predicted_probability_and_loss_highest_first():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    actual = np.array([0, 0, 1, 1])
    losses = sample_losses(probs, actual)
    assert losses == pytest.approx(-np.log([0.9, 0.2, 0.4, 0.7]))
    shown = np.argsort(-losses, kind="stable")[:2]
    figure = top_losses_grid(np.zeros((4, 8, 8, 1), np.uint8), TopLosses(actual, probs, losses, shown, ["cat", "dog"]), "m")
    titles = [axis.get_title() for axis in figure.axes if axis.get_title()]
    assert titles == ["cat / dog\np 0.80, loss 1.61", "dog / cat\np 0.60, loss 0.92"]


def test_top_losses_of_a_table_are_a_table_of_rows():
    probs = np.array([[0.9, 0.1], [0.2, 0.8]])
    actual = np.array([0, 0])
    losses = sample_losses(probs, actual)
    features = np.array([[5.1, 3.5], [6.7, 3.0]])
    figure = top_losses_table(features, ["length", "width"], TopLosses(actual, probs, losses, np.array([1]), ["a", "b"]), "t")
    cells = figure.axes[0].tables[0].get_celld()
    assert [cells[0, c].get_text().get_text() for c in range(4)] == [
        "actual / predicted", "probability, loss", "length", "width"
    ]
    assert [cells[1, c].get_text().get_text() for c in range(4)] == ["a / b", "p 0.80, loss 1.61", "6.7", "3"]
