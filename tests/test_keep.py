"""The model file keeps the epoch validation chooses (`train.keep`, `train.monitor`), never one chosen by test."""

import pytest
import torch

from pipeline.config.params import parse_params
from pipeline.core.paths import Paths
from pipeline.core.runtime import Normalization
from pipeline.data.store import load_meta, load_split
from pipeline.models.file import load_model
from pipeline.stages.train import train
from pipeline.analysis.measure import measure
from tests.helpers.params import tiny_raw
from tests.helpers.train_runs import curve

pytestmark = pytest.mark.usefixtures("outside_any_repo")


def _val_losses_and_model(paths: Paths, raw: dict) -> tuple[list[float], dict]:
    """Train with the given params; the per-epoch validation losses and the saved model file's contents."""
    train("catsdogs_cnn", parse_params(raw), paths)
    saved = torch.load(paths.model_file("catsdogs_cnn"), weights_only=True)
    return [value for _, value in curve(paths, "val/loss")], saved


def test_the_kept_model_is_the_epoch_with_the_best_validation_loss(prepared):
    # Three sound epochs, then one at a learning rate that wrecks the model: the last epoch is never the best.
    wreck = [{"lr": 0.001, "epochs": 3}, {"lr": 50.0, "epochs": 1}]
    raw = tiny_raw(**{"models.catsdogs_cnn.epochs": 4, "train.lr_schedule": wreck})
    losses, saved = _val_losses_and_model(prepared, raw)
    best = 1 + losses.index(min(losses))
    assert best != len(losses)
    assert saved["epoch"] == best and saved["kept"] == "best"
    model, _ = load_model(prepared.model_file("catsdogs_cnn"))
    val = load_split(prepared, "catsdogs", "val")
    normalization = Normalization.from_stats(load_meta(prepared, "catsdogs"))
    assert measure(model, val, 4, torch.device("cpu"), normalization).loss == pytest.approx(min(losses), rel=1e-5)


def test_keep_last_keeps_the_last_epoch(prepared):
    raw = tiny_raw(**{"models.catsdogs_cnn.epochs": 3, "train.keep": "last"})
    losses, saved = _val_losses_and_model(prepared, raw)
    assert saved["epoch"] == 3 and saved["kept"] == "last"


def test_monitor_val_acc_keeps_the_first_epoch_with_the_best_validation_accuracy(prepared):
    raw = tiny_raw(**{"models.catsdogs_cnn.epochs": 4, "train.monitor": "val_acc"})
    _, saved = _val_losses_and_model(prepared, raw)
    accuracies = [acc for _, acc in curve(prepared, "val/acc")]
    assert saved["epoch"] == 1 + accuracies.index(max(accuracies))
