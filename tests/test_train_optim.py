"""Training's optimizer and penalties: SGD or Adam as asked, L1/L2 penalties that shrink the weights and are logged
apart from the data loss, and a loss that falls on a learnable sample."""

import math
import shutil

import pytest
import torch

from pipeline.config.params import parse_params
from pipeline.core.paths import Paths
from pipeline.models.file import load_model
from pipeline.stages.train import train
from pipeline.training.recipe import make_optimizer
from pipeline.training.recipe import penalized_weights, weight_penalty
from tests.helpers.datasets import prepare
from tests.helpers.params import tiny_raw
from tests.helpers.train_runs import CURVES, curve, weights

pytestmark = pytest.mark.usefixtures("outside_any_repo")

SGD = {"train.optimizer": "sgd", "train.lr": 0.01}


@pytest.fixture(scope="module")
def sgd_run(tiny_run, tmp_path_factory) -> tuple[Paths, dict]:
    """The tiny run trained again with plain SGD (no penalty), in its own copy, once for the module, and the figures
    train returned: the baseline the penalty tests compare with."""
    paths = Paths(shutil.copytree(tiny_run[0].root, tmp_path_factory.mktemp("sgd") / "run"))
    with pytest.MonkeyPatch.context() as patch:  # outside any repo, as conftest's `outside_any_repo`
        patch.chdir(paths.root)
        patch.setenv("DVC_STUDIO_OFFLINE", "true")
        return paths, train("catsdogs_cnn", parse_params(tiny_raw(**SGD)), paths)


def test_sgd_optimizer_trains_and_is_recorded(sgd_run):
    paths, last = sgd_run
    _, saved = load_model(paths.model_file("catsdogs_cnn"))
    assert saved.train["optimizer"] == "sgd"
    assert all(math.isfinite(last[name]) for name in CURVES)


def test_make_optimizer_builds_sgd_with_momentum_and_weight_decay():
    raw = tiny_raw(**{"train.optimizer": "sgd", "train.lr": 0.05, "train.momentum": 0.5, "train.weight_decay": 0.01})
    settings = parse_params(raw).model("catsdogs_cnn").train
    optimizer = make_optimizer(torch.nn.Linear(2, 1).parameters(), settings)
    assert isinstance(optimizer, torch.optim.SGD)
    group = optimizer.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.05, 0.5, 0.01)


def test_make_optimizer_defaults_to_adam(tiny_params):
    optimizer = make_optimizer(torch.nn.Linear(2, 1).parameters(), tiny_params.model("catsdogs_cnn").train)
    assert isinstance(optimizer, torch.optim.Adam)
    assert optimizer.param_groups[0]["lr"] == 0.001


def test_training_loss_falls_on_a_learnable_sample(paths):
    """Standardised images and no dropout: the loss leaves chance (ln 2 = 0.69) in the first epochs, whatever the
    CPU's kernels or threads (unstandardised, it sits at chance for as many epochs as the numerics decide). The
    last three epochs average 0.04 here, at most 0.30 with other seeds, two threads or oneDNN off; a model that
    does not learn stays at 0.69."""
    raw = tiny_raw(
        **{
            "data.catsdogs.sample_per_class": 40,
            "split.catsdogs": {"train": 30, "val": 5, "test": 5},
            "preprocess.catsdogs.normalize": True,
            "train.batch_size": 4,
            "models.catsdogs_cnn.epochs": 16,
            "models.catsdogs_cnn.dropout": [0, 0, 0],
        }
    )
    params = parse_params(raw)
    train("catsdogs_cnn", params, prepare(paths, params, "catsdogs"))
    losses = [value for _, value in curve(paths, "train/loss")]
    assert len(losses) == 16
    assert losses[0] > 0.65
    assert sum(losses[-3:]) / 3 < 0.4


def test_l1_penalty_shrinks_the_weights(sgd_run, trained):
    without = sum(w.abs().sum() for w in weights(sgd_run[0]).values())
    train("catsdogs_cnn", parse_params(tiny_raw(**SGD, **{"train.l1": 0.01})), trained)
    assert sum(w.abs().sum() for w in weights(trained).values()) < without


def test_penalties_are_logged_apart_from_the_data_loss(tiny_run, trained):
    _, plain = tiny_run
    assert plain["train/penalty"] == 0
    heavy = train("catsdogs_cnn", parse_params(tiny_raw(**{"train.l2": 1.0, "train.l1": 0.1})), trained)
    assert heavy["train/penalty"] > 10 * heavy["train/loss"]
    assert heavy["train/loss"] < 5
    assert [step for step, value in curve(trained, "train/penalty") if value > 0] == [1, 2]


def test_l2_penalty_shrinks_the_weights(sgd_run, trained):
    without = sum(w.square().sum() for w in weights(sgd_run[0]).values())
    train("catsdogs_cnn", parse_params(tiny_raw(**SGD, **{"train.l2": 0.01})), trained)
    assert sum(w.square().sum() for w in weights(trained).values()) < without


def test_weight_penalty_is_l1_times_abs_sum_plus_l2_times_square_sum():
    kernels = [torch.tensor([[1.0, -2.0]]), torch.tensor([[[3.0]]])]
    assert weight_penalty(kernels, 0.5, 0.0).item() == pytest.approx(0.5 * 6)
    assert weight_penalty(kernels, 0.0, 0.1).item() == pytest.approx(0.1 * 14)
    assert weight_penalty(kernels, 0.5, 0.1).item() == pytest.approx(3 + 1.4)


def test_only_conv_and_dense_kernels_are_penalized():
    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.LazyLinear(1))
    model(torch.zeros(1, 1, 5, 5))
    assert [tuple(w.shape) for w in penalized_weights(model)] == [(2, 1, 3, 3), (1, 18)]
