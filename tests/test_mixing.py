"""MixUp and CutMix of training batches: inputs and targets mixed in the drawn proportion, CutMix's box of area
1 - lam, mix_prob 0 leaving batches untouched, and the draws repeatable from (seed, epoch, rank, batch)."""

import pytest
import torch
import torch.nn.functional as F

from pipeline.config.params import parse_params
from pipeline.core.errors import PipelineError
from pipeline.training.mixing import Mixer, mixer_for
from tests.helpers.params import changed, tiny_full


def _batch(classes: int = 5, n: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, 8, 10, generator=generator), torch.arange(n) % classes


def _mixer(**changes) -> Mixer:
    settings = {"mixup": 0.0, "cutmix": 0.0, "mix_prob": 1.0, "num_classes": 5, "seed": 7} | changes
    return Mixer(**settings)


def test_mixup_mixes_inputs_and_targets_in_the_drawn_proportion():
    mixer, (inputs, labels) = _mixer(mixup=0.4), _batch()
    mix = mixer.draw(3, 2, 8, 10)
    assert mix.mixed and not mix.cutmix and 0 < mix.lam < 1
    mixed, targets, counted = mixer(inputs, labels, 3, 2)
    assert torch.allclose(mixed, mix.lam * inputs + (1 - mix.lam) * inputs.flip(0))
    one_hot = F.one_hot(labels, 5).float()
    assert torch.allclose(targets, mix.lam * one_hot + (1 - mix.lam) * one_hot.flip(0))
    assert torch.allclose(targets.sum(1), torch.ones(6))
    assert torch.equal(counted, labels if mix.lam >= 0.5 else labels.flip(0))


def test_a_two_class_models_target_is_the_positive_class_probability():
    mixer = _mixer(mixup=1.0, num_classes=2)
    labels = torch.tensor([0, 1, 1, 0, 1, 1])
    lam = mixer.draw(1, 0, 8, 10).lam
    _, targets, _ = mixer(_batch()[0], labels, 1, 0)
    assert targets.shape == (6,)
    assert torch.allclose(targets, lam * labels.float() + (1 - lam) * labels.flip(0).float())


def test_cutmix_pastes_a_box_whose_area_is_one_minus_lam():
    mixer, (inputs, labels) = _mixer(cutmix=1.0), _batch()
    for batch in range(20):
        mix = mixer.draw(1, batch, 8, 10)
        top, bottom, left, right = mix.box
        assert mix.cutmix and (bottom - top) * (right - left) == pytest.approx((1 - mix.lam) * 80)
        mixed, targets, _ = mixer(inputs, labels, 1, batch)
        inside = torch.zeros(8, 10, dtype=torch.bool)
        inside[top:bottom, left:right] = True
        assert torch.equal(mixed[..., inside], inputs.flip(0)[..., inside])
        assert torch.equal(mixed[..., ~inside], inputs[..., ~inside])
        one_hot = F.one_hot(labels, 5).float()
        assert torch.allclose(targets, mix.lam * one_hot + (1 - mix.lam) * one_hot.flip(0))


def test_with_both_on_a_mixed_batch_takes_either_about_half_the_time():
    mixer = _mixer(mixup=0.2, cutmix=1.0)
    kinds = [mixer.draw(0, batch, 8, 10).cutmix for batch in range(400)]
    assert 150 < sum(kinds) < 250


def test_mix_prob_zero_leaves_every_batch_untouched_and_off_is_no_mixer():
    mixer, (inputs, labels) = _mixer(mixup=1.0, cutmix=1.0, mix_prob=0.0), _batch()
    for batch in range(10):
        mixed, targets, counted = mixer(inputs, labels, 1, batch)
        assert mixed is inputs and targets is labels and counted is labels
    assert mixer_for(mixup=0, cutmix=0, mix_prob=1.0, num_classes=5, seed=1, rank=0) is None


def test_mix_prob_mixes_about_that_share_of_the_batches():
    mixer = _mixer(mixup=1.0, mix_prob=0.3)
    assert 90 < sum(mixer.draw(0, batch, 8, 10).mixed for batch in range(400)) < 150


def test_the_draws_repeat_from_seed_epoch_rank_and_batch_alone():
    first, again = _mixer(cutmix=1.0), _mixer(cutmix=1.0)
    assert first.draw(2, 5, 8, 10) == again.draw(2, 5, 8, 10)
    others = [_mixer(cutmix=1.0, seed=8).draw(2, 5, 8, 10), first.draw(3, 5, 8, 10), first.draw(2, 6, 8, 10),
              _mixer(cutmix=1.0, rank=1).draw(2, 5, 8, 10)]
    assert all(other != first.draw(2, 5, 8, 10) for other in others)


def test_a_table_models_own_cutmix_is_an_error_naming_its_key_when_params_are_read():
    raw = changed(tiny_full(), {"models.iris_mlp.cutmix": 1.0})
    with pytest.raises(PipelineError, match=r"models\.iris_mlp\.cutmix: CutMix pastes boxes of images, but 'iris'"):
        parse_params(raw)


def test_a_table_model_keeps_no_cutmix_under_the_top_level_one():
    params = parse_params(changed(tiny_full(), {"train.cutmix": 1.0}))
    assert params.model("iris_mlp").train.cutmix == 0
    assert params.model("cifar_cnn").train.cutmix == 1.0
