import subprocess
import sys

import numpy as np
import pytest
import torch

from pipeline.config.training import AugParams
from pipeline.training.augment import describe, per_image_augment

PER_IMAGE = {
    "rotation": 30,
    "zoom": 0.3,
    "shear": 20,
    "brightness": 0.3,
    "contrast": 0.5,
    "policy": "trivialaugment",
    "erasing": 1.0,
}


def _textured(count: int = 8, channels: int = 3) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(0).integers(0, 256, (count, 32, 32, channels), dtype=np.uint8))


def _changed(before: torch.Tensor, after: torch.Tensor) -> int:
    """How many images of the batch the transform changed."""
    return int((before != after).flatten(1).any(1).sum())


@pytest.mark.parametrize("key", ["crop_padding", "shift", "hflip", "vflip"])
def test_pixel_moves_alone_leave_nothing_to_do_image_by_image(key):
    assert per_image_augment(AugParams()) is None
    assert per_image_augment(AugParams(**{key: 0.1 if key == "shift" else 1})) is None


@pytest.mark.parametrize("channels", [1, 3], ids=["gray", "rgb"])
@pytest.mark.parametrize(
    ("key", "value"), [*PER_IMAGE.items(), ("policy", "randaugment")], ids=[*PER_IMAGE, "randaugment"]
)
def test_each_transform_alone_changes_the_images_and_keeps_shape_and_dtype(key, value, channels):
    images = _textured(channels=channels)
    augment = per_image_augment(AugParams(**{key: value}))
    assert augment is not None
    out = augment(images, seed=0)
    assert out.shape == images.shape and out.dtype == torch.uint8
    assert _changed(images, out) >= len(images) // 2


@pytest.mark.parametrize("channels", [1, 3], ids=["gray", "rgb"])
@pytest.mark.parametrize(
    "aug", [AugParams(**PER_IMAGE), AugParams(policy="randaugment", erasing=0.5)], ids=["all", "randaugment"]
)
def test_the_same_seed_gives_the_same_batch_and_another_seed_another(aug, channels):
    images, augment = _textured(channels=channels), per_image_augment(aug)
    first = augment(images, seed=3)
    assert torch.equal(first, augment(images, seed=3))
    assert not torch.equal(first, augment(images, seed=4))
    copies = augment(images[:1].repeat(8, 1, 1, 1), seed=3)  # one image eight times: each copy gets its own draw
    assert len({tuple(copy.flatten().tolist()) for copy in copies}) > 4


def test_the_policy_draws_from_a_fork_and_leaves_torchs_global_generator_as_it_was():
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    per_image_augment(AugParams(policy="trivialaugment", erasing=0.5))(_textured(), seed=1)
    assert torch.equal(torch.rand(3), expected)


def test_erasing_is_drawn_with_its_probability_and_erases_a_patch_only():
    images = _textured(count=200, channels=1) | 1  # no zero pixels: an erased pixel is a zero
    out = per_image_augment(AugParams(erasing=0.5))(images, seed=2)
    erased = (out == 0) & (out != images)
    assert torch.equal(out[~erased], images[~erased])
    assert 70 < _changed(images, out) < 130


@pytest.mark.parametrize("key", ["rotation", "zoom", "shear"])
def test_p_zero_turns_the_affine_group_off(key):
    assert per_image_augment(AugParams(**{key: PER_IMAGE[key], "p": 0})) is None


def test_p_is_the_share_of_images_given_the_affine_group():
    images = _textured(count=200, channels=1)
    out = per_image_augment(AugParams(rotation=30, p=0.5))(images, seed=0)
    assert 70 < _changed(images, out) < 130


def test_describe_names_the_transforms_that_are_on():
    assert describe(AugParams()) == "no augmentation"
    assert describe(AugParams(rotation=20, hflip=0.5)) == "rotation=20, hflip=0.5"
    assert describe(AugParams(rotation=20, p=0.5)) == "rotation=20, p=0.5"
    assert describe(AugParams(hflip=0.5, p=0.5)) == "hflip=0.5"
    assert describe(AugParams(crop_padding=4, policy="randaugment", erasing=0.25)) == (
        "crop_padding=4, policy=randaugment, erasing=0.25"
    )


@pytest.mark.slow  # a fresh Python process that imports torch: seconds
def test_albumentations_is_imported_only_when_one_of_its_transforms_is_on():
    """In a fresh process, as a training run starts: crop and flips alone (every sample model) leave it unimported."""
    script = (
        "import sys\n"
        "from pipeline.config.training import AugParams\n"
        "import pipeline.stages.train\n"
        "from pipeline.training.feed import batch_augmenter\n"
        "batch_augmenter(AugParams(crop_padding=4, hflip=0.5))\n"
        "print('albumentations' in sys.modules)\n"
        "batch_augmenter(AugParams(rotation=10))\n"
        "print('albumentations' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "True"]
