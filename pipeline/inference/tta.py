"""Test-time augmentation (`evaluate.tta`): a model whose class probabilities are the mean of the probabilities of
several views of each input image.

The views (of a batch N, C, H, W), in this order:
- `none`: the image alone (the model is returned unwrapped);
- `flip`: the image and its mirror (flipped left-right): 2 views;
- `flip_shift`: those two, then each moved one pixel down and right, then each moved one pixel up and left, the
  edge row and column repeated into the gap (torch's replicate padding): 6 views, equally weighted. This is
  airbench's TTA with edge padding instead of reflection, and a plain mean instead of its 0.5/0.5 weighting.

The wrapper returns logits whose probabilities (`outputs.probabilities`) are those means, so that accuracy, loss
and calibration are all of the averaged probabilities: log of the mean probability per class (a softmax of it gives
the mean back), or for one sigmoid output the log-odds of the mean probability of the second class.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.core.errors import PipelineError

SHIFT = 1  # pixels


def views(images: torch.Tensor, mode: str) -> list[torch.Tensor]:
    """The views of a batch of images (N, C, H, W) that `mode` averages over, in the order the module docstring
    states."""
    if images.ndim != 4:
        raise PipelineError(f"test-time augmentation ({mode!r}) needs images (N, C, H, W), got shape {tuple(images.shape)}")
    if mode == "none":
        return [images]
    plain = [images, images.flip(-1)]
    if mode == "flip":
        return plain
    height, width = images.shape[-2:]
    padded = [F.pad(view, (SHIFT,) * 4, mode="replicate") for view in plain]
    down_right = [view[..., :height, :width] for view in padded]
    up_left = [view[..., 2 * SHIFT :, 2 * SHIFT :] for view in padded]
    return [*plain, *down_right, *up_left]


def mean_probability_logits(logits: torch.Tensor) -> torch.Tensor:
    """Logits (N, outputs) whose probabilities are the mean of the probabilities of each view's logits
    (views, N, outputs); computed in log space (logsumexp), so no probability underflows to a log of 0."""
    log_views = math.log(logits.shape[0])
    if logits.shape[-1] == 1:
        positive = torch.logsumexp(F.logsigmoid(logits), dim=0) - log_views
        negative = torch.logsumexp(F.logsigmoid(-logits), dim=0) - log_views
        return positive - negative
    return torch.logsumexp(F.log_softmax(logits, dim=-1), dim=0) - log_views


class AveragedOverViews(nn.Module):
    """A model scored on the views of `mode` in one batch, their probabilities averaged."""

    def __init__(self, model: nn.Module, mode: str) -> None:
        super().__init__()
        self.model, self.mode = model, mode

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of the averaged probabilities (see `mean_probability_logits`)."""
        each = views(images, self.mode)
        logits = self.model(torch.cat(each))
        return mean_probability_logits(logits.float().reshape(len(each), len(images), -1))


def with_tta(model: nn.Module, mode: str) -> nn.Module:
    """The model itself for `none`, else the model averaged over the views of `mode`."""
    return model if mode == "none" else AveragedOverViews(model, mode)
