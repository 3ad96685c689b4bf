import numpy as np
import pytest

from pipeline.config.training import AugParams
from pipeline.training.augment import build_augment, describe

EACH_TRANSFORM = {
    "rotation": 30,
    "shift": 0.2,
    "zoom": 0.3,
    "shear": 20,
    "hflip": 1.0,
    "vflip": 1.0,
    "brightness": 0.3,
    "contrast": 0.5,
    "crop_padding": 4,
}


def _textured(channels: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (32, 32, channels), dtype=np.uint8)


def _outputs(aug: AugParams, seed: int, image: np.ndarray, calls: int = 4) -> list[np.ndarray]:
    augment = build_augment(aug, seed, size=32)
    return [augment(image=image)["image"] for _ in range(calls)]


def test_all_transforms_off_gives_no_augmentation():
    assert build_augment(AugParams(), seed=0, size=32) is None


@pytest.mark.parametrize("channels", [1, 3], ids=["gray", "rgb"])
@pytest.mark.parametrize(("key", "value"), EACH_TRANSFORM.items())
def test_each_transform_alone_changes_the_image_and_keeps_shape_and_dtype(key, value, channels):
    image = _textured(channels)
    augment = build_augment(AugParams(**{key: value}), seed=0, size=32)
    assert augment is not None
    out = augment(image=image)["image"]
    assert out.shape == image.shape
    assert out.dtype == np.uint8
    assert not np.array_equal(out, image)


def test_hflip_mirrors_the_image():
    image = _textured(3)
    out = build_augment(AugParams(hflip=1.0), seed=0, size=32)(image=image)["image"]
    assert np.array_equal(out, image[:, ::-1])


@pytest.mark.parametrize("channels", [1, 3], ids=["gray", "rgb"])
def test_same_seed_gives_identical_outputs_over_several_calls(channels):
    aug = AugParams(**EACH_TRANSFORM | {"hflip": 0.5})
    image = _textured(channels)
    first, second = _outputs(aug, 3, image), _outputs(aug, 3, image)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert not np.array_equal(first[0], first[1])


def test_different_seed_gives_different_outputs():
    aug = AugParams(**EACH_TRANSFORM | {"hflip": 0.5})
    image = _textured(1)
    first, second = _outputs(aug, 3, image), _outputs(aug, 4, image)
    assert not any(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_crop_padding_shifts_the_image_within_the_padding_and_fills_with_zeros():
    image = np.random.default_rng(1).integers(1, 256, (32, 32, 3), dtype=np.uint8)
    augment = build_augment(AugParams(crop_padding=4), seed=0, size=32)
    padded = np.pad(image, ((4, 4), (4, 4), (0, 0)))
    for _ in range(8):
        out = augment(image=image)["image"]
        windows = [(dy, dx) for dy in range(9) for dx in range(9) if np.array_equal(padded[dy : dy + 32, dx : dx + 32], out)]
        assert len(windows) == 1


def test_vflip_mirrors_the_image_upside_down():
    image = _textured(3)
    out = build_augment(AugParams(vflip=1.0), seed=0, size=32)(image=image)["image"]
    assert np.array_equal(out, image[::-1])


@pytest.mark.parametrize("key", ["rotation", "shift", "zoom", "shear"])
def test_p_zero_turns_the_affine_group_off(key):
    assert build_augment(AugParams(**{key: EACH_TRANSFORM[key], "p": 0}), seed=0, size=32) is None


def test_p_is_the_share_of_images_given_the_affine_group():
    image = _textured(1)
    outputs = _outputs(AugParams(rotation=30, p=0.5), 0, image, calls=200)
    unchanged = sum(np.array_equal(out, image) for out in outputs)
    assert 70 < unchanged < 130


def test_describe_names_the_transforms_that_are_on():
    assert describe(AugParams()) == "no augmentation"
    assert describe(AugParams(rotation=20, hflip=0.5)) == "rotation=20, hflip=0.5"
    assert describe(AugParams(rotation=20, p=0.5)) == "rotation=20, p=0.5"
    assert describe(AugParams(hflip=0.5, p=0.5)) == "hflip=0.5"
