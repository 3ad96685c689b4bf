"""A photo folder with planted image-quality problems, as the audit's cleanvision checks must find them: clean
textured photos (fractal noise, as natural images have detail at every scale, under a few shapes and film grain;
64 to 128 pixels a side, JPEG and PNG), and other photos made dark, overexposed, blurred, near-constant, huge or a
thin strip, each in one of three class folders."""

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

CLASSES = ("field", "forest", "shore")


@dataclass
class QualityTree:
    """The folder's clean photos and, by issue kind, the paths (relative to the folder) planted with it."""

    clean: list[str] = field(default_factory=list)
    planted: dict[str, list[str]] = field(default_factory=dict)


def photo(rng: np.random.Generator) -> np.ndarray:
    """A sharp textured colour photo (BGR float, 64 to 128 pixels a side): fractal noise, whose octaves' amplitudes
    halve with their frequency, under two to four filled shapes, with film grain."""
    height, width = (int(side) for side in rng.integers(64, 129, 2))
    image = np.zeros((height, width, 3), np.float32)
    for cells, amplitude in ((2, 90), (4, 45), (8, 25), (16, 14), (32, 8)):
        noise = rng.normal(0, amplitude, (cells, cells, 3)).astype(np.float32)
        image += cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    image += rng.uniform(60, 190, 3)
    for _ in range(rng.integers(2, 5)):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
        cv2.circle(image, centre, int(rng.integers(6, min(height, width) // 3)), colour, -1)
    return image + rng.normal(0, 4, image.shape)


def dark(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An underexposed shot: every pixel at 6 to 15% of its brightness."""
    return image * rng.uniform(0.06, 0.15)


def light(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An overexposed shot: the photo washed out towards white, its darkest pixels at 245 or more."""
    return 255 - (255 - image) * rng.uniform(0.02, 0.04)


def blurry(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An out-of-focus shot: a Gaussian blur of 4 to 6% of the short side (a 200-pixel photo: 8 to 12 pixels)."""
    sigma = min(image.shape[:2]) * rng.uniform(0.04, 0.06)
    return cv2.GaussianBlur(image, (0, 0), sigma)


def low_information(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A near-constant frame (lens cap, blank scan): one colour with a faint noise of 1 level."""
    colour = rng.uniform(20, 235, 3)
    return np.broadcast_to(colour, image.shape) + rng.normal(0, 1, image.shape)


def odd_size(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A full-resolution camera frame among small photos: 1600 x 1200."""
    return cv2.resize(image, (1600, 1200), interpolation=cv2.INTER_CUBIC)


def odd_aspect_ratio(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A panorama strip cut from the photo: 8 times as wide as high."""
    width = image.shape[1]
    return cv2.resize(image[: max(8, width // 8)], (width, max(8, width // 8)))


PLANTERS = {
    "dark": dark, "light": light, "blurry": blurry, "low_information": low_information, "odd_size": odd_size,
    "odd_aspect_ratio": odd_aspect_ratio,
}


def quality_tree(root: Path, clean: int = 60, each: int = 10, odd: int = 2, seed: int = 0) -> QualityTree:
    """`clean` photos in 3 class folders under `root` (a third PNG, the rest JPEG), `each` other photos made dark,
    light, blurry and near-constant and `odd` made huge or a strip (JPEG); returns what went where."""
    rng = np.random.default_rng(seed)
    tree = QualityTree()
    for number in range(clean):
        suffix = ".png" if number % 3 == 0 else ".jpg"
        tree.clean.append(_write(root, f"{CLASSES[number % 3]}/photo_{number}{suffix}", photo(rng)))
    for kind, plant in PLANTERS.items():
        count = odd if kind.startswith("odd") else each
        tree.planted[kind] = [_write(root, f"{CLASSES[n % 3]}/{kind}_{n}.jpg", plant(photo(rng), rng))
                              for n in range(count)]
    return tree


def _write(root: Path, name: str, image: np.ndarray) -> str:
    """The image (BGR float) saved under `root` as `name` (JPEG at quality 90, or PNG); returns `name`."""
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    quality = [cv2.IMWRITE_JPEG_QUALITY, 90] if name.endswith(".jpg") else []
    cv2.imwrite(str(root / name), np.clip(image, 0, 255).astype(np.uint8), quality)
    return name
