import json
import math

import numpy as np
import pytest
import torch

from pipeline.checkpoint import load_model
from pipeline.errors import PipelineError
from pipeline.evaluate import classification_metrics, evaluate
from pipeline.models import loss, probabilities
from pipeline.paths import Paths
from pipeline.preprocess import load_split
from pipeline.train import train


@pytest.fixture(autouse=True)
def _outside_any_repo(tmp_path, monkeypatch):
    """DVCLive looks for a DVC/Git repo from the working directory and may report to Studio: give it neither."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_STUDIO_OFFLINE", "true")


@pytest.fixture
def trained(prepared, tiny_params) -> Paths:
    train("catsdogs_cnn", tiny_params, prepared)
    return prepared


def _recomputed(paths: Paths) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    model, _ = load_model(paths.model_file("catsdogs_cnn"))
    test = load_split(paths, "catsdogs", "test")
    with torch.no_grad():
        logits = model(torch.from_numpy(test.images).permute(0, 3, 1, 2).float() / 255)
    return test.labels, probabilities(logits).argmax(1).numpy(), logits


def test_classification_metrics_match_hand_computed_values():
    actual = np.array([0, 0, 1, 1, 2])
    predicted = np.array([0, 1, 1, 1, 0])
    metrics = classification_metrics(actual, predicted, ["a", "b", "c"])
    assert metrics["per_class"]["a"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert metrics["per_class"]["b"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert metrics["macro"] == pytest.approx({"precision": (0.5 + 2 / 3) / 3, "recall": 0.5, "f1": 1.3 / 3})


def test_a_class_never_predicted_scores_zero_not_nan():
    metrics = classification_metrics(np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 0]), ["a", "b", "c"])
    assert metrics["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert not any(math.isnan(value) for value in metrics["macro"].values())
    json.dumps(metrics, allow_nan=False)


def test_a_class_absent_from_the_test_set_has_zero_support():
    metrics = classification_metrics(np.array([0, 1]), np.array([0, 1]), ["a", "b", "c"])
    assert metrics["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert metrics["per_class"]["a"]["f1"] == 1.0


def test_evaluate_writes_test_json_with_every_figure(trained):
    returned = evaluate("catsdogs_cnn", trained, "cpu")
    written = json.loads(trained.test_metrics("catsdogs_cnn").read_text())
    assert written == returned
    assert set(written) == {"accuracy", "loss", "samples", "per_class", "macro"}
    assert written["samples"] == 6
    assert set(written["per_class"]) == {"cat", "dog"}
    assert sum(item["support"] for item in written["per_class"].values()) == 6
    assert set(written["macro"]) == {"precision", "recall", "f1"}


def test_evaluate_accuracy_and_loss_match_the_saved_model(trained):
    metrics = evaluate("catsdogs_cnn", trained, "cpu")
    labels, predicted, logits = _recomputed(trained)
    assert metrics["accuracy"] == pytest.approx(np.mean(predicted == labels))
    assert metrics["loss"] == pytest.approx(loss(logits, torch.from_numpy(labels)).item(), rel=1e-5)


def test_confusion_records_name_the_actual_and_predicted_class_of_every_test_image(trained):
    evaluate("catsdogs_cnn", trained, "cpu")
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
