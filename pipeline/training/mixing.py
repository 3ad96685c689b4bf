"""MixUp and CutMix of whole training batches (`train.mixup`, `train.cutmix`, `train.mix_prob`), as timm's `Mixup`.

A batch is mixed with probability `mix_prob`; when both are on, a mixed batch takes CutMix or MixUp with probability
0.5 each (timm's `switch_prob`). The share lam of the batch's own images is drawn from Beta(alpha, alpha), and the
batch is mixed with itself in flipped order (image i with image N-1-i, as timm does):
- MixUp: inputs lam * x + (1 - lam) * x.flip(0);
- CutMix: a box of area about (1 - lam) of the image, at a uniform centre and clipped to the image, pasted from
  x.flip(0); lam is then the share of the image outside the box (timm's `correct_lam`).
The targets mix in the same proportion: class probabilities for a model with one logit per class, the positive
class's probability for a two-class model's one sigmoid output. Label smoothing, when on, applies on top (in
`pipeline.models.outputs.loss`). Training accuracy and the confidence figures count each image against the label
with the larger weight (its own when lam >= 0.5, else its partner's).

Every batch draws from its own seed (run seed, epoch, process, batch number), so a resumed run repeats an epoch
exactly. The draws are a few scalars, made on the host with numpy's Generator: torch has no Beta draw that takes a
`torch.Generator`, and the global torch generator is the one dropout draws from.
"""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.core.runtime import derived_seed
from pipeline.models.outputs import output_count

MIX_STREAM = 1  # set apart from the augmentation's draws, which come from (seed, epoch, rank, batch) alone
SWITCH_PROB = 0.5  # timm's switch_prob: CutMix or MixUp when both are on


@dataclass(frozen=True)
class Mix:
    """One batch's draw: whether it is mixed, how (CutMix or MixUp), the share lam of its own images, and CutMix's
    box as (top, bottom, left, right) pixel bounds."""

    mixed: bool
    cutmix: bool = False
    lam: float = 1.0
    box: tuple[int, int, int, int] = (0, 0, 0, 0)


class Mixer:
    """MixUp and CutMix of one run's training batches (normalised NCHW images on the device, int64 labels)."""

    def __init__(
        self, *, mixup: float, cutmix: float, mix_prob: float, num_classes: int, seed: int, rank: int = 0
    ) -> None:
        self.mixup, self.cutmix, self.mix_prob = mixup, cutmix, mix_prob
        self.num_classes, self.seed, self.rank = num_classes, seed, rank

    def draw(self, epoch: int, batch: int, height: int, width: int) -> Mix:
        """The draw of batch `batch` (0-based) of `epoch`, for images of `height` x `width`."""
        rng = np.random.default_rng(derived_seed(self.seed, epoch, self.rank, batch, MIX_STREAM))
        if rng.random() >= self.mix_prob:
            return Mix(False)
        cutmix = bool(self.cutmix) and (not self.mixup or rng.random() < SWITCH_PROB)
        lam = float(rng.beta(*[self.cutmix if cutmix else self.mixup] * 2))
        if not cutmix:
            return Mix(True, False, lam)
        box = cut_box(rng, height, width, lam)
        top, bottom, left, right = box
        return Mix(True, True, 1 - (bottom - top) * (right - left) / (height * width), box)

    def __call__(
        self, inputs: torch.Tensor, labels: torch.Tensor, epoch: int, batch: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The batch mixed (or not, by the draw): (inputs, targets for the loss, labels to count accuracy by).
        Unmixed, the batch comes back untouched, its labels as the targets."""
        mix = self.draw(epoch, batch, *inputs.shape[-2:])
        if not mix.mixed:
            return inputs, labels, labels
        return mixed_inputs(inputs, mix), mixed_targets(labels, mix.lam, self.num_classes), (
            labels if mix.lam >= 0.5 else labels.flip(0)
        )


def cut_box(rng: np.random.Generator, height: int, width: int, lam: float) -> tuple[int, int, int, int]:
    """timm's `rand_bbox`: a box with sides sqrt(1 - lam) of the image's, centred at a uniform pixel, clipped."""
    ratio = np.sqrt(1 - lam)
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    y, x = int(rng.integers(0, height)), int(rng.integers(0, width))
    top, bottom = np.clip([y - cut_h // 2, y + cut_h // 2], 0, height)
    left, right = np.clip([x - cut_w // 2, x + cut_w // 2], 0, width)
    return int(top), int(bottom), int(left), int(right)


def mixed_inputs(inputs: torch.Tensor, mix: Mix) -> torch.Tensor:
    """The batch mixed with its flipped order, as the draw says (a new tensor; `inputs` is left as it was)."""
    partner = inputs.flip(0)
    if not mix.cutmix:
        return inputs * mix.lam + partner * (1 - mix.lam)
    top, bottom, left, right = mix.box
    pasted = inputs.clone()
    pasted[..., top:bottom, left:right] = partner[..., top:bottom, left:right]
    return pasted


def mixed_targets(labels: torch.Tensor, lam: float, num_classes: int) -> torch.Tensor:
    """lam of each image's own label and 1 - lam of its partner's: class probabilities (N, classes), or the positive
    class's probability (N,) for a two-class model's one output."""
    truth = labels.float() if output_count(num_classes) == 1 else F.one_hot(labels, num_classes).float()
    return truth * lam + truth.flip(0) * (1 - lam)


def mixer_for(*, mixup: float, cutmix: float, mix_prob: float, num_classes: int, seed: int, rank: int) -> Mixer | None:
    """The run's mixer, or None when `train.mixup` and `train.cutmix` are both 0 (off)."""
    if not (mixup or cutmix):
        return None
    return Mixer(mixup=mixup, cutmix=cutmix, mix_prob=mix_prob, num_classes=num_classes, seed=seed, rank=rank)
