import pytest
import torch

from pipeline.config.training import AugParams
from pipeline.training.batch_augment import BatchedPixelMoves


def _numbered(count: int = 8, side: int = 6, channels: int = 3) -> torch.Tensor:
    """uint8 NHWC images whose pixels are all different (1 + row * side + column), so moves can be traced."""
    plane = torch.arange(1, side * side + 1, dtype=torch.uint8).view(side, side)
    return plane[None, :, :, None].repeat(count, 1, 1, channels)


def test_all_off_returns_the_batch_unchanged():
    images = _numbered()
    assert torch.equal(BatchedPixelMoves(AugParams())(images, seed=1), images)


def test_a_certain_horizontal_flip_mirrors_every_image_and_a_vertical_one_turns_it_upside_down():
    images = _numbered()
    assert torch.equal(BatchedPixelMoves(AugParams(hflip=1))(images, seed=1), images.flip(2))
    assert torch.equal(BatchedPixelMoves(AugParams(vflip=1))(images, seed=1), images.flip(1))


def test_half_the_images_are_flipped_at_probability_one_half():
    images = _numbered(count=400)
    flipped = BatchedPixelMoves(AugParams(hflip=0.5))(images, seed=3)
    mirrored = (flipped == images.flip(2)).flatten(1).all(1)
    unchanged = (flipped == images).flatten(1).all(1)
    assert bool((mirrored | unchanged).all())
    assert 150 < int(mirrored.sum()) < 250


def test_a_padded_crop_is_a_window_of_the_zero_padded_image():
    images, pad = _numbered(count=50), 2
    out = BatchedPixelMoves(AugParams(crop_padding=pad))(images, seed=5)
    padded = torch.nn.functional.pad(images, (0, 0, pad, pad, pad, pad))
    windows = {(dy, dx): padded[:, dy : dy + 6, dx : dx + 6] for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)}
    for number in range(len(images)):
        assert any(torch.equal(out[number], window[number]) for window in windows.values())
    assert len({tuple(out[number].flatten().tolist()) for number in range(len(images))}) > 5


def test_a_shift_moves_the_image_by_whole_pixels_within_reach_and_repeats_its_edge():
    images, reach = _numbered(count=50, side=10), 2
    out = BatchedPixelMoves(AugParams(shift=0.2))(images, seed=2)
    index = torch.arange(10)

    def moved(dy: int, dx: int) -> torch.Tensor:
        return images[:, (index - dy).clamp(0, 9)][:, :, (index - dx).clamp(0, 9)]

    candidates = [moved(dy, dx) for dy in range(-reach, reach + 1) for dx in range(-reach, reach + 1)]
    for number in range(len(images)):
        assert any(torch.equal(out[number], candidate[number]) for candidate in candidates)
    assert len({tuple(out[number].flatten().tolist()) for number in range(len(images))}) > 5


def test_at_p_zero_the_shift_is_off():
    images = _numbered()
    assert torch.equal(BatchedPixelMoves(AugParams(shift=0.3, p=0))(images, seed=4), images)


def test_the_same_seed_gives_the_same_batch_and_another_seed_another():
    images, augment = _numbered(count=32), BatchedPixelMoves(AugParams(crop_padding=2, hflip=0.5, shift=0.2))
    assert torch.equal(augment(images, seed=9), augment(images, seed=9))
    assert not torch.equal(augment(images, seed=9), augment(images, seed=10))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_the_gpu_a_batch_is_augmented_where_it_lies():
    images = _numbered(count=16).cuda()
    out = BatchedPixelMoves(AugParams(crop_padding=2, hflip=0.5))(images, seed=1)
    assert out.device == images.device and out.dtype == torch.uint8 and out.shape == images.shape
