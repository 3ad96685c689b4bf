"""Grad-CAM: the map of a model that looks at a planted patch peaks on the patch; a model without convolutions has
none; evaluate's grids take the overlay only when asked."""

import numpy as np
import torch
from torch import nn

from pipeline.analysis.gradcam import heatmaps, last_conv
from pipeline.stages.evaluate import evaluate

SIZE = 24


def patch_detector(outputs: int) -> nn.Module:
    """A convnet that scores how much bright patch an image holds: a 3x3 box filter, ReLU, a global average, and
    a linear head whose first class (or one logit) rises with it."""
    conv = nn.Conv2d(1, 2, 3, padding=1)
    head = nn.Linear(2, outputs)
    with torch.no_grad():
        conv.weight.copy_(torch.stack([torch.full((1, 3, 3), 1 / 9), torch.full((1, 3, 3), -1 / 9)]))
        conv.bias.zero_()
        head.weight.zero_()
        head.weight[0, 0] = 1.0
        head.bias.zero_()
    return nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), head)


def planted(corners: list[tuple[int, int]], rng: np.random.Generator) -> np.ndarray:
    """Dark noisy images (N, SIZE, SIZE, 1), each with a bright 5x5 patch at its (row, column) corner."""
    images = rng.integers(0, 30, (len(corners), SIZE, SIZE, 1), dtype=np.uint8)
    for image, (row, column) in zip(images, corners, strict=True):
        image[row : row + 5, column : column + 5] = 255
    return images


def test_the_map_peaks_on_the_planted_patch_for_a_class_logit_and_a_single_logit():
    corners = [(2, 3), (15, 16), (9, 1)]
    images = planted(corners, np.random.default_rng(0))
    for model, target in ((patch_detector(3), 0), (patch_detector(1), 1)):
        maps = heatmaps(model, images, np.full(len(images), target), None)
        assert maps.shape == (3, SIZE, SIZE) and maps.max() == 1.0 and maps.min() >= 0
        for heat, (row, column) in zip(maps, corners, strict=True):
            peak_row, peak_column = np.unravel_index(heat.argmax(), heat.shape)
            assert row <= peak_row < row + 5 and column <= peak_column < column + 5
            assert heat[row : row + 5, column : column + 5].mean() > 3 * heat.mean()


def test_a_model_without_convolutions_has_no_map():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(SIZE * SIZE, 3))
    assert last_conv(mlp) is None
    assert heatmaps(mlp, np.zeros((2, SIZE, SIZE, 1), np.uint8), np.zeros(2, int), None) is None


def test_evaluate_draws_the_overlay_only_when_asked(trained):
    evaluate("catsdogs_cnn", trained, "cpu")
    plain = trained.top_losses("catsdogs_cnn").read_bytes()
    evaluate("catsdogs_cnn", trained, "cpu", gradcam=True)
    assert trained.top_losses("catsdogs_cnn").read_bytes() != plain
