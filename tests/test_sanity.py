"""The overfit-a-batch check: it fits a few images by heart and tells train-mode from eval-mode predictions."""

import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli.main import app
from pipeline.config.params import parse_params
from pipeline.preflight.sanity import OverfitResult, Prediction, overfit, overfit_text
from tests.helpers.params import tiny_full, tiny_raw

BN_MODEL = {"dataset": "catsdogs", "arch": "cifar_cnn", "widths": [4, 4, 4], "dense": 8, "batchnorm": True}


def test_overfit_drives_the_loss_on_three_images_near_zero(prepared, tiny_params):
    result = overfit("catsdogs_cnn", tiny_params, prepared, n=3, max_steps=500)
    assert result.fit_loss < 0.01
    assert result.steps < 500
    assert len({p.actual for p in result.predictions}) == 2
    assert all(p.train_mode[0] == p.actual for p in result.predictions)


def test_overfit_picks_images_of_different_classes_first(prepared, tiny_params):
    result = overfit("catsdogs_cnn", tiny_params, prepared, n=2, max_steps=1)
    assert {p.actual for p in result.predictions} == {"cat", "dog"}


def test_min_steps_trains_past_the_target_loss(prepared, tiny_params):
    assert overfit("catsdogs_cnn", tiny_params, prepared, max_steps=40, min_steps=40, target_loss=10).steps == 40


def test_overfit_is_deterministic_on_the_cpu(prepared):
    params = parse_params(tiny_raw(**{"models.bn_cnn": BN_MODEL}))
    first = overfit("bn_cnn", params, prepared, max_steps=20)
    assert overfit("bn_cnn", params, prepared, max_steps=20) == first


def _result(train: list[str], eval_: list[str]) -> OverfitResult:
    rows = [Prediction(i, t, (t, 0.9), (e, 0.6)) for i, (t, e) in enumerate(zip(train, eval_, strict=True))]
    return OverfitResult(steps=12, fit_loss=0.005, eval_loss=1.5, predictions=rows)


def test_a_collapse_to_one_class_in_eval_mode_is_named_and_explained():
    result = _result(["cat", "dog", "cat"], ["dog", "dog", "dog"])
    assert result.eval_collapsed
    text = overfit_text(result, "resnet")
    assert "Eval mode predicts one class for all" in text
    assert "bn_momentum" in text and "--min-steps" in text
    assert "     1  dog          dog (0.90)             dog (0.60)" in text


def test_agreeing_modes_are_not_a_collapse():
    result = _result(["cat", "dog"], ["cat", "dog"])
    assert not result.eval_collapsed
    assert "eval mode agrees on 2 of 2" in overfit_text(result, "cnn")


def test_the_cli_prints_the_side_by_side_table(prepared, tiny_params, monkeypatch):
    monkeypatch.chdir(prepared.root)
    (prepared.root / "params.yaml").write_text(yaml.safe_dump(tiny_raw()))
    result = CliRunner().invoke(app, ["sanity", "overfit", "--model", "catsdogs_cnn", "--n", "3", "--steps", "300"])
    assert result.exit_code == 0, result.output
    assert "true class   train mode             eval mode" in result.output
    assert "catsdogs_cnn: 3 training images" in result.output


@pytest.mark.parametrize("args", [["--n", "0"], ["--steps", "0"]])
def test_the_cli_refuses_nonsense_counts(args):
    result = CliRunner().invoke(app, ["sanity", "overfit", "--model", "catsdogs_cnn", *args])
    assert result.exit_code == 2


@pytest.fixture
def cifar(paths):
    """A tiny CIFAR-10 sample taken through download, split and preprocess."""
    from pipeline.stages.download import download
    from pipeline.stages.preprocess import preprocess
    from pipeline.stages.split import split

    params = parse_params(tiny_full())
    download("cifar10", params.data["cifar10"], params.seed, paths)
    split("cifar10", params.split["cifar10"], params.seed, paths)
    preprocess("cifar10", params.preprocess["cifar10"], paths)
    return paths


def _resnet(bn_momentum: float):
    raw = tiny_full()
    raw["models"]["cifar_resnet18"] |= {"optimizer": "adam", "lr": 0.0003, "bn_momentum": bn_momentum}
    return parse_params(raw)


def _eval_right(result) -> int:
    return sum(p.eval_mode[0] == p.actual for p in result.predictions)


@pytest.mark.slow
def test_resnet_eval_mode_fails_with_slow_running_statistics_and_recovers_with_more_of_them(cifar):
    slow = overfit("cifar_resnet18", _resnet(0.01), cifar, n=3, max_steps=300)
    assert slow.fit_loss < 0.01
    assert all(p.train_mode[0] == p.actual for p in slow.predictions)
    assert slow.eval_loss > 1 > 100 * slow.fit_loss  # the same images, far worse in eval mode
    longer = overfit("cifar_resnet18", _resnet(0.1), cifar, n=3, max_steps=100, min_steps=100)
    assert _eval_right(longer) == 3 and longer.eval_loss < 0.1


def test_resnet_eval_mode_agrees_with_faster_running_statistics(cifar):
    fast = overfit("cifar_resnet18", _resnet(0.5), cifar, n=3, max_steps=300)
    assert fast.fit_loss < 0.01
    assert _eval_right(fast) == 3
