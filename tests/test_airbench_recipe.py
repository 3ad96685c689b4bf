"""airbench94's recipe as `train.*` keys: the triangle schedule, BatchNorm's own rate (`bn_lr_scale`), Nesterov
momentum, the lookahead, the whitening layer and alternating flips, each by its formula, and a tiny run with all of
them on that saves, resumes and keeps the whitening frozen."""

import math
from itertools import pairwise

import pytest
import torch
from torch import nn

from pipeline.config.archs import AirbenchArgs
from pipeline.config.params import parse_params
from pipeline.config.training import TrainParams
from pipeline.core.distributed import Shard
from pipeline.core.errors import PipelineError
from pipeline.data.store import SplitArrays
from pipeline.models.file import load_model
from pipeline.models.recipe_nets import airbench
from pipeline.models.registry import parameter_groups
from pipeline.stages.train import train
from pipeline.training.feed import EpochBatches
from pipeline.training.lookahead import Lookahead
from pipeline.training.recipe import batchnorm_rate, make_optimizer
from pipeline.training.schedule import lr_at
from pipeline.training.whitening import whiten_first_conv, whitening_bias_epoch
from tests.helpers.datasets import prepare
from tests.helpers.params import tiny_raw
from tests.helpers.train_runs import outputs, train_killed_in_epoch, weights

AIRBENCH_TINY = {
    "preprocess.catsdogs.color": "rgb", "preprocess.catsdogs.normalize": True,
    "models.catsdogs_cnn": {"dataset": "catsdogs", "arch": "airbench", "stem": 24, "widths": [8, 8, 8], "epochs": 3},
    "train.optimizer": "sgd", "train.lr": 0.05, "train.momentum": 0.85, "train.nesterov": True,
    "train.weight_decay": 0.001, "train.bn_lr_scale": 64, "train.lr_schedule": "triangle", "train.lookahead_every": 2,
    "train.whiten": True, "train.whiten_bias_epochs": 1, "train.label_smoothing": 0.2, "aug.hflip": "alternate",
    "aug.crop_padding": 2,
}


def _net() -> nn.Module:
    return airbench(AirbenchArgs(stem=24, widths=(8, 8, 8)), in_channels=3, size=32, outputs=3)


def test_the_triangle_rises_from_a_fifth_to_lr_at_23_percent_then_falls_to_7_percent():
    settings = TrainParams(lr=2.0, lr_schedule="triangle", epochs=10)
    rates = [lr_at(settings, step // 10, step % 10, 10) for step in range(101)]
    assert rates[0] == pytest.approx(0.4) and rates[23] == pytest.approx(2.0) and rates[100] == pytest.approx(0.14)
    assert max(rates) == rates[23] and all(a < b for a, b in pairwise(rates[:24]))


def test_batchnorm_trains_at_its_scaled_rate_with_the_same_decay_per_step():
    net, settings = _net(), TrainParams(optimizer="sgd", lr=0.1, weight_decay=0.01, bn_lr_scale=64, nesterov=True)
    optimizer = make_optimizer(batchnorm_rate(net, parameter_groups(net, 0.1), settings), settings)
    normed, rest = optimizer.param_groups
    shifts = [m.bias for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert {id(p) for p in normed["params"]} == {id(p) for p in shifts}
    assert normed["lr"] == pytest.approx(6.4) and normed["lr"] * normed["weight_decay"] == pytest.approx(0.001)
    assert rest["lr"] == 0.1 and rest["weight_decay"] == 0.01 and rest["nesterov"]
    trained = [p for group in optimizer.param_groups for p in group["params"]]
    assert len(trained) == len({id(p) for p in trained}) == len([p for p in net.parameters() if p.requires_grad])


def test_keys_that_mean_nothing_alone_are_refused_naming_the_key():
    with pytest.raises(PipelineError, match="bn_lr_scale"):
        batchnorm_rate(nn.Linear(2, 2), [{"params": [], "lr": 0.1}], TrainParams(bn_lr_scale=8))
    for changes, key in (
        ({"train.nesterov": True}, "nesterov"),  # adam
        ({"train.whiten_bias_epochs": 2}, "whiten_bias_epochs"),
        ({"train.lookahead_decay": 0.5}, "lookahead_decay"),
        ({"train.lr_schedule": "triangle", "train.warmup_epochs": 1}, "warmup_epochs"),
    ):
        with pytest.raises(PipelineError, match=key):
            parse_params(tiny_raw(**changes)).model("catsdogs_cnn")


def test_the_lookahead_pulls_the_weights_to_its_average_by_the_formula():
    net = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(1.0)
    lookahead = Lookahead(net, every=2, decay=0.5, total_steps=4)
    for step, value in enumerate((2.0, 3.0, 5.0, 7.0), start=1):
        with torch.no_grad():
            net.weight.fill_(value)
        lookahead.step(net)
        if step == 2:  # decay 0.5 * (2/4)^3: average = d * 1 + (1 - d) * 3, and the weights set to it
            pulled = 0.0625 * 1 + 0.9375 * 3
            assert net.weight.item() == pytest.approx(pulled)
    # step 4: d = 0.5, average = 0.5 * pulled + 0.5 * 7, then the last step sets the weights to it
    assert net.weight.item() == pytest.approx(0.5 * pulled + 0.5 * 7)
    again = Lookahead(net, every=2, decay=0.5, total_steps=4)
    again.load_state_dict(lookahead.state_dict())
    assert again.steps == 4 and torch.equal(again.average["weight"], lookahead.average["weight"])


def test_the_whitening_layer_decorrelates_the_training_patches_and_is_frozen():
    generator = torch.Generator().manual_seed(0)
    mixing = torch.rand(3, 3, generator=generator) + torch.eye(3)
    pixels = torch.rand(64, 8, 8, 3, generator=generator) @ mixing  # correlated channels
    images = (pixels / pixels.max() * 255).to(torch.uint8).numpy()
    net = _net()
    whiten_first_conv(net, SplitArrays(images, torch.zeros(64, dtype=torch.int64).numpy()), None)
    stem = net[0]
    assert not stem.weight.requires_grad and stem.bias.requires_grad
    with torch.no_grad():
        out = nn.functional.conv2d(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255, stem.weight)
    half = out[:, :12].permute(0, 2, 3, 1).reshape(-1, 12)
    covariance = half.T @ half / len(half)
    off_diagonal = covariance - torch.diag(torch.diag(covariance))
    assert off_diagonal.abs().max() < 0.05 and torch.equal(stem.weight[12:], -stem.weight[:12])
    settings = TrainParams(whiten=True, whiten_bias_epochs=2)
    whitening_bias_epoch(net, settings, 2)
    assert stem.bias.requires_grad
    whitening_bias_epoch(net, settings, 3)
    assert not stem.bias.requires_grad


def test_a_first_layer_that_cannot_whiten_is_refused_naming_the_key():
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten())
    with pytest.raises(PipelineError, match=r"train.whiten: .* needs 2 x 27 = 54"):
        whiten_first_conv(net, SplitArrays(torch.zeros(2, 8, 8, 3, dtype=torch.uint8).numpy(), None), None)


def test_alternating_flips_mirror_each_image_every_other_epoch_from_one_draw():
    sampler = EpochBatches(200, 50, seed=3, shard=Shard(), alternate_flips=True)

    def flips(epoch: int) -> dict[int, bool]:
        sampler.set_epoch(epoch)
        return {i: bool(f) for _, index, flipped in sampler for i, f in zip(index, flipped.tolist(), strict=True)}

    first, second, third = flips(1), flips(2), flips(3)
    assert all(second[i] != first[i] for i in first) and first == third
    assert 70 < sum(first.values()) < 130


@pytest.mark.usefixtures("outside_any_repo")
def test_a_killed_run_with_the_whole_recipe_resumes_to_the_same_weights_its_whitening_never_trained(
    paths, monkeypatch
):
    params = parse_params(tiny_raw(**AIRBENCH_TINY))
    prepared = prepare(paths, params, "catsdogs")
    last = train("catsdogs_cnn", params, prepared)
    assert math.isfinite(last["train/loss"])
    uninterrupted, figures = weights(prepared), outputs(prepared)
    net, saved = load_model(prepared.model_file("catsdogs_cnn"))
    assert saved.train["whiten"] and saved.train["lookahead_every"] == 2 and saved.train["nesterov"]
    stem = next(module for module in net.modules() if isinstance(module, nn.Conv2d))
    assert torch.equal(stem.weight[12:], -stem.weight[:12])  # still the whitening filters: never trained
    prepared.model_file("catsdogs_cnn").unlink()

    train_killed_in_epoch(monkeypatch, 3, params, prepared)
    assert train("catsdogs_cnn", params, prepared)["resumed_from_epoch"] == 2
    resumed = weights(prepared)
    assert all(torch.equal(uninterrupted[key], resumed[key]) for key in uninterrupted)  # the lookahead resumed too
    assert outputs(prepared) == figures
