"""A killed training run resumes from its checkpoint and ends as an uninterrupted one; a checkpoint that does not
fit the run is not resumed."""

import sys
import types

import pytest
import torch

from pipeline.config.params import parse_params
from pipeline.core.torchfile import read_torch_file
from pipeline.stages.train import train
from tests.helpers.params import tiny_raw
from tests.helpers.train_runs import curve, outputs, train_killed_in_epoch, weights

pytestmark = pytest.mark.usefixtures("outside_any_repo")


AUGMENTED = {"models.catsdogs_cnn.epochs": 3, "aug.rotation": 15, "aug.hflip": 0.5, "train.optimizer": "sgd"}
RECIPES = {  # every training recipe on: the moving average, the per-batch schedule and the mixing resume exactly
    **AUGMENTED, "train.label_smoothing": 0.1, "train.mixup": 0.4, "train.cutmix": 1.0, "train.mix_prob": 0.8,
    "train.ema": 0.9, "train.warmup_epochs": 1, "train.lr_schedule": "onecycle",
}


@pytest.mark.parametrize("changes", [AUGMENTED, RECIPES], ids=["augmented", "recipes"])
def test_a_killed_run_resumes_from_its_checkpoint_and_ends_with_the_same_weights(
    prepared, monkeypatch, capsys, changes
):
    params = parse_params(tiny_raw(**changes))
    train("catsdogs_cnn", params, prepared)
    uninterrupted, figures = weights(prepared), outputs(prepared)
    prepared.model_file("catsdogs_cnn").unlink()

    train_killed_in_epoch(monkeypatch, 3, params, prepared)
    assert prepared.checkpoint("catsdogs_cnn").is_file()
    assert not prepared.model_file("catsdogs_cnn").exists()
    capsys.readouterr()

    last = train("catsdogs_cnn", params, prepared)
    assert last["resumed_from_epoch"] == 2
    resuming = f"resuming catsdogs_cnn after epoch 2 of 3, from {prepared.checkpoint('catsdogs_cnn')} (a run cut short)"
    assert resuming in capsys.readouterr().err.splitlines()
    resumed = weights(prepared)
    assert all(torch.equal(uninterrupted[key], resumed[key]) for key in uninterrupted)
    assert outputs(prepared) == figures
    assert [step for step, _ in curve(prepared, "val/acc")] == [1, 2, 3]
    assert not prepared.checkpoint("catsdogs_cnn").exists()


def test_a_checkpoint_of_other_params_is_not_resumed(prepared, monkeypatch, capsys):
    train_killed_in_epoch(monkeypatch, 2, parse_params(tiny_raw(**AUGMENTED)), prepared)
    other = parse_params(tiny_raw(**{**AUGMENTED, "train.lr": 0.05}))
    assert train("catsdogs_cnn", other, prepared)["resumed_from_epoch"] == 0
    assert "resuming" not in capsys.readouterr().err


def test_a_checkpoint_of_other_code_is_not_resumed_and_a_warning_names_it(prepared, tiny_params, monkeypatch, caplog):
    model_code = prepared.root / "edited_model.py"
    model_code.write_text("WIDTH = 32\n")
    edited = types.ModuleType("pipeline.models.edited")
    edited.__file__ = str(model_code)
    monkeypatch.setitem(sys.modules, edited.__name__, edited)
    train_killed_in_epoch(monkeypatch, 2, tiny_params, prepared)
    model_code.write_text("WIDTH = 64\n")

    assert train("catsdogs_cnn", tiny_params, prepared)["resumed_from_epoch"] == 0
    checkpoint = prepared.checkpoint("catsdogs_cnn")
    assert f"{checkpoint}: a checkpoint of another run (its fingerprint differs" in caplog.text
    assert "removed, training starts over" in caplog.text


def test_a_checkpoint_whose_state_does_not_load_is_a_warning_and_training_starts_over(
    prepared, tiny_params, monkeypatch, caplog
):
    train_killed_in_epoch(monkeypatch, 2, tiny_params, prepared)
    checkpoint = prepared.checkpoint("catsdogs_cnn")
    saved = read_torch_file(checkpoint, "checkpoint")
    saved["model"]["0.0.weight"] = torch.zeros(1)
    torch.save(saved, checkpoint)

    assert train("catsdogs_cnn", tiny_params, prepared)["resumed_from_epoch"] == 0
    assert f"{checkpoint}: its state does not load into this run (RuntimeError: " in caplog.text
    assert "removed, training starts over" in caplog.text


def test_an_unreadable_checkpoint_is_ignored(prepared, tiny_params):
    prepared.checkpoint("catsdogs_cnn").parent.mkdir(parents=True)
    prepared.checkpoint("catsdogs_cnn").write_bytes(b"half a checkpoint")
    assert train("catsdogs_cnn", tiny_params, prepared)["resumed_from_epoch"] == 0


def test_a_corrupt_last_checkpoint_is_a_warning_and_training_resumes_from_the_one_before(
    prepared, monkeypatch, caplog
):
    params = parse_params(tiny_raw(**AUGMENTED))
    train_killed_in_epoch(monkeypatch, 3, params, prepared)
    latest = prepared.checkpoint("catsdogs_cnn")
    latest.write_bytes(latest.read_bytes()[:-100])

    last = train("catsdogs_cnn", params, prepared)

    assert last["resumed_from_epoch"] == 1
    assert f"{latest}: not a readable checkpoint" in caplog.text
    assert [step for step, _ in curve(prepared, "val/acc")] == [1, 2, 3]


WORKERS = {"aug.hflip": 0.5, "train.workers": 2}  # the tiny model has dropout


@pytest.mark.slow
def test_a_killed_run_with_worker_processes_resumes_to_the_same_weights(prepared, monkeypatch):
    params = parse_params(tiny_raw(**WORKERS))
    train("catsdogs_cnn", params, prepared)
    uninterrupted = weights(prepared)

    train_killed_in_epoch(monkeypatch, 2, params, prepared)
    last = train("catsdogs_cnn", params, prepared)

    assert last["resumed_from_epoch"] == 1
    resumed = weights(prepared)
    assert all(torch.equal(uninterrupted[key], resumed[key]) for key in uninterrupted)


@pytest.mark.slow
def test_worker_processes_do_not_change_the_weights(prepared):
    train("catsdogs_cnn", parse_params(tiny_raw(**{**WORKERS, "train.workers": 0})), prepared)
    alone = weights(prepared)
    train("catsdogs_cnn", parse_params(tiny_raw(**WORKERS)), prepared)
    with_workers = weights(prepared)
    assert all(torch.equal(alone[key], with_workers[key]) for key in alone)
