"""The learning-rate range test: the suggestion math on synthetic loss curves, the stop on divergence, a real run on a
tiny model, and `--apply` writing only the model's `lr`, comments kept."""

import copy
import math

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from pipeline.cli.main import app
from pipeline.config.params import parse_params
from pipeline.core.errors import PipelineError
from pipeline.core.runtime import Normalization, seed_everything, to_tensor
from pipeline.data.store import load_meta, load_split
from pipeline.models.outputs import loss
from pipeline.preflight.lr_find import (
    BETA,
    RangeTest,
    apply,
    find_and_plot,
    lr_find,
    range_test,
    rates,
    steep,
    suggest,
    valley,
)
from pipeline.stages.train import fresh_model
from pipeline.training.recipe import make_optimizer
from tests.helpers.steps import plain_step
from tests.helpers.datasets import prepare
from tests.helpers.params import TINY_IRIS, changed, tiny_raw


def _curve(lr: float) -> float:
    """A loss that falls from 2 to 1 around lr 1e-3 (steepest there, against log lr) and explodes past 0.1."""
    x = math.log10(lr)
    return 1 + 1 / (1 + math.exp(3 * (x + 3))) + (math.expm1(4 * (x + 1)) if x > -1 else 0.0)


def test_rates_rise_exponentially_from_1e7_to_10():
    lrs = rates(9)
    assert lrs[0] == pytest.approx(1e-7) and lrs[-1] == pytest.approx(10)
    assert np.allclose(lrs[1:] / lrs[:-1], 10.0)


def test_the_smoothed_loss_is_the_bias_corrected_moving_average():
    losses = iter([3.0, 1.0, 2.0])
    test = range_test(lambda lr: next(losses), rates(3))
    first, second = 3.0, (BETA * 0.02 * 3 + 0.02 * 1) / (1 - BETA**2)
    assert test.losses[:2] == pytest.approx([first, second])
    assert not test.diverged and len(test.losses) == 3


def test_the_test_stops_once_the_smoothed_loss_passes_four_times_its_minimum():
    test = range_test(_curve, rates(200))
    assert test.diverged and len(test.losses) < 200
    assert test.losses[-1] > 4 * test.losses.min()
    assert (test.losses[:-1] <= 4 * np.minimum.accumulate(test.losses[:-1])).all()
    assert test.lrs[-1] < 10


def test_a_nan_loss_stops_the_test():
    test = range_test(lambda lr: float("nan") if lr > 1e-3 else 1.0, rates(50))
    assert test.diverged and math.isnan(test.losses[-1])
    assert suggest(RangeTest(test.lrs, test.raw, test.losses, 20, True)).valley[0] <= 1e-3


def test_steep_is_where_the_loss_falls_fastest_against_log_lr():
    lrs = rates(200)
    losses = np.array([_curve(lr) for lr in lrs])
    assert 10**-3.2 < lrs[steep(lrs, losses)] < 10**-2.8


def test_valley_is_fastais_point_in_the_longest_decreasing_run():
    losses = np.array([*np.linspace(30, 1, 30), 2, 3, 4])
    # fastai: the run of 30 ends at 29; it starts "one before" (-1); -1 + int(30/3) + int(10/2) = 14
    assert valley(losses) == 14


def test_valley_follows_the_longest_run_through_a_bump_not_a_short_steep_drop():
    losses = np.array([5.0, 1.0, 6.0, 5.5, 5.8, 5.0, 4.0, 3.0, 2.0, 1.5, 3.0])
    # the longest decreasing subsequence: 6, 5.5, 5, 4, 3, 2, 1.5 (indices 2..9), skipping the bump at 4
    assert valley(losses) == 2 + int(7 / 3) + int(7 / 6)


def test_the_suggestions_land_on_the_synthetic_curve():
    test = range_test(_curve, rates(200))
    found = suggest(test)
    # the smoothing lags (beta 0.98 over 25 steps a decade), so the smoothed curve falls fastest a little later
    assert 1e-3 < found.steep[0] < 5e-3
    # the curve falls (if barely, at first) from the start to its minimum: the valley is about halfway, in log lr
    lowest = test.lrs[np.argmin(test.losses)]
    assert test.lrs[20] < found.valley[0] < found.steep[0] < lowest
    assert math.log(found.valley[0] / test.lrs[20]) == pytest.approx(math.log(lowest / test.lrs[20]) / 2, rel=0.1)


def test_too_few_points_before_divergence_is_an_error_naming_steps():
    test = range_test(lambda lr: 1.0 if lr < 1e-6 else 100.0, rates(100))
    with pytest.raises(PipelineError, match="--steps 100"):
        suggest(test)


def test_a_real_run_on_a_tiny_model_writes_the_plot_and_both_suggestions(prepared, tiny_params):
    found, text = find_and_plot("catsdogs_cnn", tiny_params, prepared, steps=60)
    assert prepared.lr_find_plot("catsdogs_cnn").read_bytes()[:4] == b"\x89PNG"
    assert f"SuggestedLRs(valley={found.valley[0]:.2e}, steep={found.steep[0]:.2e})" in text
    assert 1e-7 <= found.steep[0] <= 10 and 1e-7 <= found.valley[0] <= 10


@pytest.mark.slow
def test_on_a_toy_problem_the_valley_is_within_3x_of_the_best_constant_rate_found_by_a_sweep(paths):
    """Softmax regression through one small hidden layer on Iris (adam, the default optimizer): the best constant
    rate is the one of a sweep (a quarter decade apart) whose 100 steps end with the lowest training loss."""
    params = parse_params(changed(copy.deepcopy(TINY_IRIS), {"models.iris_mlp.batch_size": 10}))
    prepare(paths, params, "iris")
    config, meta, split = params.model("iris_mlp"), load_meta(paths, "iris"), load_split(paths, "iris", "train")
    inputs, labels = to_tensor(split.inputs, Normalization.from_stats(meta)), torch.from_numpy(split.labels)

    def trained_loss(lr: float) -> float:
        seed_everything(params.seed, torch.device("cpu"))
        model = fresh_model(config, meta, inputs.shape[1])
        optimizer = make_optimizer(model.parameters(), config.train.model_copy(update={"lr": lr}))
        rng = np.random.default_rng(0)
        for _ in range(100):
            chosen = torch.from_numpy(rng.choice(len(labels), 10, replace=False))
            plain_step(model, optimizer, inputs[chosen], labels[chosen])
        with torch.no_grad():
            return loss(model.eval()(inputs), labels).item()

    sweep = 10.0 ** np.arange(-3, -0.49, 0.25)
    best = sweep[int(np.argmin([trained_loss(lr) for lr in sweep]))]
    assert sweep[0] < best < sweep[-1]  # inside the sweep, not at its ends
    valley = suggest(lr_find("iris_mlp", params, paths, steps=100)).valley[0]
    assert best / 3 <= valley <= best * 3


PARAMS_TEXT = """# the global seed
seed: 7
data:
  catsdogs: {source: sample, path: null, sample_per_class: 12}
split:
  catsdogs: {train: 6, val: 3, test: 3}
preprocess:
  catsdogs: {image_size: 32, color: gray, normalize: false}
aug: {rotation: 0, shift: 0, zoom: 0, shear: 0, hflip: 0, brightness: 0}
train: {epochs: 1, batch_size: 4, optimizer: adam, lr: 0.001, device: cpu}
models:
  # the classic convnet
  catsdogs_cnn:
    dataset: catsdogs
    arch: catsdogs_cnn
    epochs: 2   # short
  # a second model, untouched
  other_cnn:
    dataset: catsdogs
    arch: catsdogs_cnn
# trailing comment
"""


def test_apply_writes_only_the_models_lr_and_keeps_comments(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(PARAMS_TEXT)
    params = parse_params(yaml.safe_load(PARAMS_TEXT))
    assert "0.001 -> 0.00123" in apply(path, params, "catsdogs_cnn", 0.0012345)
    text = path.read_text()
    for comment in ("# the global seed", "# the classic convnet", "epochs: 2   # short", "# a second model",
                    "# trailing comment"):
        assert comment in text
    before, after = yaml.safe_load(PARAMS_TEXT), yaml.safe_load(text)
    before["models"]["catsdogs_cnn"]["lr"] = 0.00123
    assert after == before
    assert text.index("lr: 0.00123") < text.index("# a second model")
    apply(path, params, "catsdogs_cnn", 0.05)  # an existing key is replaced in place
    assert yaml.safe_load(path.read_text())["models"]["catsdogs_cnn"]["lr"] == 0.05


def test_apply_refuses_a_step_schedule_and_a_missing_block(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(PARAMS_TEXT)
    stepped = parse_params(tiny_raw(**{"models.catsdogs_cnn.lr_schedule": [{"lr": 0.01, "epochs": 2}]}))
    with pytest.raises(PipelineError, match="--apply: models.catsdogs_cnn has a step list"):
        apply(path, stepped, "catsdogs_cnn", 0.01)
    renamed = PARAMS_TEXT.replace("  catsdogs_cnn:\n", "  renamed:\n")
    path.write_text(renamed)
    with pytest.raises(PipelineError, match="no block models.catsdogs_cnn"):
        apply(path, parse_params(tiny_raw()), "catsdogs_cnn", 0.01)
    assert path.read_text() == renamed


def test_the_cli_prints_both_suggestions_and_applies_the_valley(prepared, monkeypatch):
    monkeypatch.chdir(prepared.root)
    (prepared.root / "params.yaml").write_text(PARAMS_TEXT)
    result = CliRunner().invoke(app, ["lr-find", "catsdogs_cnn", "--steps", "40", "--apply"])
    assert result.exit_code == 0, result.output
    assert "SuggestedLRs(valley=" in result.output and "steep" in result.output
    assert "models.catsdogs_cnn.lr: 0.001 -> " in result.output
    assert (prepared.root / "metrics" / "catsdogs_cnn" / "lr_find.png").is_file()
    written = yaml.safe_load((prepared.root / "params.yaml").read_text())["models"]["catsdogs_cnn"]["lr"]
    valley = float(result.output.split("SuggestedLRs(valley=")[1].split(",")[0])
    assert written == pytest.approx(valley, rel=0.01)
    assert "# the classic convnet" in (prepared.root / "params.yaml").read_text()


def test_apply_on_the_sample_writes_the_models_sample_budget(tmp_path):
    text = PARAMS_TEXT.replace("    epochs: 2   # short\n", "    epochs: 2   # short\n    sample: {epochs: 1}\n")
    path = tmp_path / "params.yaml"
    path.write_text(text)
    params = parse_params(yaml.safe_load(text))
    assert apply(path, params, "catsdogs_cnn", 0.02).startswith("models.catsdogs_cnn.sample.lr:")
    block = yaml.safe_load(path.read_text())["models"]["catsdogs_cnn"]
    assert block["sample"] == {"epochs": 1, "lr": 0.02} and "lr" not in block
