"""Training-time augmentation: `aug.*` params to an albumentations pipeline. Zero turns a transform off."""

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no network check on import: the pipeline runs offline

import albumentations as A  # noqa: E402
import cv2  # noqa: E402

from pipeline.params import AugParams  # noqa: E402


def build_augment(aug: AugParams, seed: int, size: int) -> A.Compose | None:
    """The seeded augmentation for training images (uint8 HWC, `size` a side), or None when all is off."""
    transforms: list[A.BasicTransform] = []
    if aug.crop_padding:
        transforms += [
            A.Pad(padding=aug.crop_padding, border_mode=cv2.BORDER_CONSTANT, fill=0),
            A.RandomCrop(height=size, width=size),
        ]
    if aug.rotation or aug.shift or aug.zoom or aug.shear:
        transforms.append(
            A.Affine(
                rotate=(-aug.rotation, aug.rotation),
                translate_percent=(-aug.shift, aug.shift),
                scale=(1 - aug.zoom, 1 + aug.zoom),
                shear=(-aug.shear, aug.shear),
                border_mode=cv2.BORDER_REPLICATE,
                p=1.0,
            )
        )
    if aug.hflip:
        transforms.append(A.HorizontalFlip(p=aug.hflip))
    if aug.brightness:
        transforms.append(A.RandomBrightnessContrast(brightness_limit=aug.brightness, contrast_limit=0, p=1.0))
    return A.Compose(transforms, seed=seed) if transforms else None
