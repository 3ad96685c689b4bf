"""Training-time augmentation: `aug.*` params to an albumentations pipeline. Zero turns a transform off."""

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no network check on import: the pipeline runs offline

import albumentations as A  # noqa: E402
import cv2  # noqa: E402

from pipeline.config.training import AugParams  # noqa: E402


def build_augment(aug: AugParams, seed: int, size: int) -> A.Compose | None:
    """The seeded augmentation for training images (uint8 HWC, `size` a side), or None when all is off.

    Order: random crop of the padded image, the affine group (rotation, shift, zoom, shear; applied with
    probability `p`), flips, then brightness and contrast.
    """
    transforms = [*_crop(aug, size), *_affine(aug), *_flips(aug), *_photometric(aug)]
    return A.Compose(transforms, seed=seed) if transforms else None


def _crop(aug: AugParams, size: int) -> list[A.BasicTransform]:
    if not aug.crop_padding:
        return []
    return [
        A.Pad(padding=aug.crop_padding, border_mode=cv2.BORDER_CONSTANT, fill=0),
        A.RandomCrop(height=size, width=size),
    ]


def _affine(aug: AugParams) -> list[A.BasicTransform]:
    if not (aug.p and (aug.rotation or aug.shift or aug.zoom or aug.shear)):
        return []
    return [
        A.Affine(
            rotate=(-aug.rotation, aug.rotation),
            translate_percent=(-aug.shift, aug.shift),
            scale=(1 - aug.zoom, 1 + aug.zoom),
            shear=(-aug.shear, aug.shear),
            border_mode=cv2.BORDER_REPLICATE,
            p=aug.p,
        )
    ]


def _flips(aug: AugParams) -> list[A.BasicTransform]:
    flips: list[A.BasicTransform] = []
    if aug.hflip:
        flips.append(A.HorizontalFlip(p=aug.hflip))
    if aug.vflip:
        flips.append(A.VerticalFlip(p=aug.vflip))
    return flips


def _photometric(aug: AugParams) -> list[A.BasicTransform]:
    if not (aug.brightness or aug.contrast):
        return []
    return [A.RandomBrightnessContrast(brightness_limit=aug.brightness, contrast_limit=aug.contrast, p=1.0)]


def describe(aug: AugParams) -> str:
    """The transforms that are on, as `key=value` pairs, for titles and reports."""
    on = {key: value for key, value in aug.model_dump().items() if value and key != "p"}
    if on and aug.p != 1 and {"rotation", "shift", "zoom", "shear"} & set(on):
        on["p"] = aug.p
    return ", ".join(f"{key}={value:g}" for key, value in on.items()) or "no augmentation"
