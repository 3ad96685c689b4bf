"""Training-time augmentation image by image: the `aug.*` transforms with no batched tensor version. Zero (or
`none`) turns a transform off.

They run on top of the batched pixel moves (`pipeline.training.batch_augment`: crop, shift, flips), which every run
draws alike whatever else is on, in this order: the affine group (rotation, zoom, shear; with probability `p`) and
brightness and contrast with albumentations, then an automatic policy (torchvision's TrivialAugmentWide or
RandAugment, with torchvision's defaults) and random erasing with torchvision. Their draws come from a seed of their
own, derived from the batch's; torchvision draws from torch's global generator, so it runs on a fork of it, seeded
per batch, and leaves the training loop's generator as it was.
"""

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch

from pipeline.config.training import AugParams
from pipeline.core.runtime import derived_seed

if TYPE_CHECKING:  # albumentations is imported where a transform of it is on: most runs use none
    import albumentations as A

PER_IMAGE_STREAM = 1  # the batch seed's child that seeds the per-image draws (the batched moves use the batch seed)
POLICIES = {"trivialaugment": "TrivialAugmentWide", "randaugment": "RandAugment"}  # torchvision.transforms.v2's
AFFINE_KEYS = {"rotation", "shift", "zoom", "shear"}  # the keys `p` applies to


@dataclass(frozen=True)
class PerImageTransforms:
    """The per-image transforms of an `aug` block, built once, applied to uint8 NHWC batches on the host."""

    albumentations: "A.Compose | None"  # the affine group, brightness and contrast
    torchvision: Callable[[torch.Tensor], torch.Tensor] | None  # the policy and erasing (a v2.Compose)

    def __call__(self, images: torch.Tensor, seed: int) -> torch.Tensor:
        """The batch with each image augmented by its own draw; the same batch seed gives the same batch."""
        seed = derived_seed(seed, PER_IMAGE_STREAM)
        if self.albumentations is not None:
            self.albumentations.set_random_seed(seed)
            images = torch.from_numpy(
                np.stack([self.albumentations(image=image)["image"].reshape(image.shape) for image in images.numpy()])
            )
        if self.torchvision is not None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                images = torch.stack([self.torchvision(image.permute(2, 0, 1)).permute(1, 2, 0) for image in images])
        return images


def per_image_augment(aug: AugParams) -> PerImageTransforms | None:
    """The block's per-image transforms, or None when none is on."""
    albumentations, torchvision = _albumentations(aug), _torchvision_transforms(aug)
    if albumentations is None and torchvision is None:
        return None
    return PerImageTransforms(albumentations, torchvision)


def _albumentations(aug: AugParams) -> "A.Compose | None":
    """The affine group (with probability `p`) and brightness/contrast that are on, as one albumentations Compose;
    None when none is. albumentations is imported here, only when one is on (half a second or more that every
    training run would pay)."""
    affine = aug.p and (aug.rotation or aug.zoom or aug.shear)
    photometric = aug.brightness or aug.contrast
    if not (affine or photometric):
        return None
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no network check on import: the pipeline runs offline
    import albumentations as A

    transforms = []
    if affine:
        transforms.append(
            A.Affine(
                rotate=(-aug.rotation, aug.rotation),
                scale=(1 - aug.zoom, 1 + aug.zoom),
                shear=(-aug.shear, aug.shear),
                border_mode=cv2.BORDER_REPLICATE,
                p=aug.p,
            )
        )
    if photometric:
        transforms.append(
            A.RandomBrightnessContrast(brightness_limit=aug.brightness, contrast_limit=aug.contrast, p=1.0)
        )
    return A.Compose(transforms)


def _torchvision_transforms(aug: AugParams) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The policy, then erasing, as one torchvision v2 Compose; None when both are off. torchvision is imported
    here, only when one is on: importing it takes seconds, which every training run would pay."""
    if aug.policy == "none" and not aug.erasing:
        return None
    from torchvision.transforms import v2

    policy = [getattr(v2, POLICIES[aug.policy])()] if aug.policy != "none" else []
    return v2.Compose([*policy, *([v2.RandomErasing(p=aug.erasing)] if aug.erasing else [])])


def describe(aug: AugParams) -> str:
    """The transforms that are on, as `key=value` pairs, for titles and reports."""
    on = {key: value for key, value in aug.on().items() if key != "p"}
    if on and aug.p != 1 and AFFINE_KEYS & set(on):
        on["p"] = aug.p
    pairs = [f"{key}={value}" if isinstance(value, str) else f"{key}={value:g}" for key, value in on.items()]
    return ", ".join(pairs) or "no augmentation"
