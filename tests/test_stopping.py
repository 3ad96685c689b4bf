"""Early stopping and `train.stop_after`: the epochs without improvement counted from the history, a run that stops
at the epoch its patience (or stop_after) says, the same whether it ran straight through or was killed and resumed
(stop_after: from the checkpoint of the run without it, as `pipeline tune` re-runs a trial it pruned)."""

import json

import pytest
import torch

from pipeline.config.params import parse_params
from pipeline.config.training import TrainParams
from pipeline.stages.evaluate import evaluate
from pipeline.stages.train import train
from pipeline.training.stopping import epochs_without_improvement, should_stop
from tests.helpers.params import tiny_raw
from tests.helpers.train_runs import curve, outputs, train_killed_in_epoch, weights


def rows(losses: list[float]) -> list[dict[str, float]]:
    """A history of validation losses (accuracy rising alongside)."""
    return [{"epoch": n, "val/loss": loss, "val/acc": n / 10} for n, loss in enumerate(losses, 1)]


def test_epochs_without_improvement_count_from_the_best_by_more_than_min_delta():
    history = rows([1.0, 0.8, 0.85, 0.79, 0.9])
    assert epochs_without_improvement(history, "val_loss", 0) == 1
    assert epochs_without_improvement(history, "val_loss", 0.05) == 3
    assert epochs_without_improvement(history, "val_acc", 0) == 0


def test_no_patience_never_stops_and_patience_stops_once_it_runs_out():
    history = rows([1.0, 1.1, 1.2])
    assert not should_stop(history, TrainParams())
    assert should_stop(history, TrainParams(patience=2))
    assert not should_stop(history, TrainParams(patience=3))


def test_stop_after_ends_the_run_after_that_epoch_whatever_the_curve():
    history = rows([1.0, 0.5, 0.2])
    assert not should_stop([], TrainParams(stop_after=1))
    assert not should_stop(history[:1], TrainParams(stop_after=2))
    assert should_stop(history[:2], TrainParams(stop_after=2)) and should_stop(history, TrainParams(stop_after=2))


def test_the_model_file_records_stop_after_only_when_it_is_set():
    assert "stop_after" not in TrainParams().recorded()
    assert TrainParams(stop_after=3).recorded()["stop_after"] == 3


# min_delta 1.0 of a loss below 1: no epoch after the first improves, so patience 1 stops the run after epoch 2.
STOPPING = {"models.catsdogs_cnn.epochs": 5, "train.patience": 1, "train.min_delta": 1.0}


@pytest.mark.usefixtures("outside_any_repo")
def test_a_run_stops_at_its_patience_and_a_killed_one_resumes_to_the_same_stop(prepared, monkeypatch):
    params = parse_params(tiny_raw(**STOPPING))
    assert train("catsdogs_cnn", params, prepared)["stopped_at"] == 2
    assert [step for step, _ in curve(prepared, "val/loss")] == [1, 2]
    assert evaluate("catsdogs_cnn", prepared, "cpu")["stopped_at"] == 2
    assert json.loads(prepared.test_metrics("catsdogs_cnn").read_text())["stopped_at"] == 2
    uninterrupted = weights(prepared)

    prepared.model_file("catsdogs_cnn").unlink()
    train_killed_in_epoch(monkeypatch, 2, params, prepared)
    last = train("catsdogs_cnn", params, prepared)
    assert (last["resumed_from_epoch"], last["stopped_at"]) == (1, 2)
    assert all(torch.equal(uninterrupted[key], value) for key, value in weights(prepared).items())


# Planned for 4 epochs, ended after the second; the checkpoint resumed is that of the run planned without stop_after.
PLANNED = {"models.catsdogs_cnn.epochs": 4}
STOPPED_AFTER_2 = {**PLANNED, "models.catsdogs_cnn.stop_after": 2}


@pytest.mark.usefixtures("outside_any_repo")
def test_stop_after_resumes_the_checkpoint_of_the_run_without_it_to_the_same_model(prepared, monkeypatch):
    stopped = parse_params(tiny_raw(**STOPPED_AFTER_2))
    assert train("catsdogs_cnn", stopped, prepared)["stopped_at"] == 2
    assert [step for step, _ in curve(prepared, "val/loss")] == [1, 2]
    assert torch.load(prepared.model_file("catsdogs_cnn"), weights_only=True)["stopped_at"] == 2
    uninterrupted, figures = weights(prepared), outputs(prepared)

    prepared.model_file("catsdogs_cnn").unlink()
    train_killed_in_epoch(monkeypatch, 3, parse_params(tiny_raw(**PLANNED)), prepared)  # as tune kills a pruned trial
    last = train("catsdogs_cnn", stopped, prepared)
    assert (last["resumed_from_epoch"], last["stopped_at"]) == (2, 2)
    assert all(torch.equal(uninterrupted[key], value) for key, value in weights(prepared).items())
    assert outputs(prepared) == figures
    assert not prepared.checkpoint("catsdogs_cnn").exists()


def test_without_patience_the_model_file_and_test_json_have_no_stopping_keys(trained):
    saved = torch.load(trained.model_file("catsdogs_cnn"), weights_only=True)
    assert "stopped_at" not in saved and "patience" not in saved["train"]
    assert "stopped_at" not in evaluate("catsdogs_cnn", trained, "cpu")
