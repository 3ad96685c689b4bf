"""A dataset of class folders with planted problems, as the audit must find them: copies of some images resized,
recompressed as JPEG at quality 60 and cropped by a few percent (near-duplicates), images filed under another class
(label errors) and blank images (outliers). Each class is a colour cast over smooth random shapes, so that a small
model learns it in a few epochs."""

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

CLASSES = ("red", "green", "blue")
SIDE = 64


@dataclass
class Planted:
    """The tree's files by path, and the paths of each planted problem: (original, copy) pairs, moved images (path,
    true class), blanks."""

    files: dict[str, bytes] = field(default_factory=dict)
    copies: list[tuple[str, str]] = field(default_factory=list)
    moved: dict[str, str] = field(default_factory=dict)
    blanks: list[str] = field(default_factory=list)


def shot(seed: int, cls: int) -> np.ndarray:
    """A smooth random colour image (BGR, SIDE x SIDE) with the class's colour cast."""
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.random((6, 6, 3)).astype(np.float32), (SIDE, SIDE), interpolation=cv2.INTER_CUBIC) * 140
    base[..., 2 - cls] += 100  # BGR: red is channel 2
    return np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)


def near_copy(image: np.ndarray, seed: int) -> bytes:
    """The image cropped by 2-5% on each side, resized to 70-90%, colour-shifted (-15 to 15 a channel) and saved as
    JPEG at quality 60."""
    rng = np.random.default_rng(seed)
    height, width = image.shape[:2]
    top, left, bottom, right = (int(side * share) for side, share in zip((height, width) * 2, rng.uniform(0.02, 0.05, 4)))
    cropped = image[top : height - bottom, left : width - right]
    scale = rng.uniform(0.7, 0.9)
    smaller = cv2.resize(cropped, (int(cropped.shape[1] * scale), int(cropped.shape[0] * scale)))
    smaller = np.clip(smaller.astype(np.int16) + rng.integers(-15, 16, 3), 0, 255).astype(np.uint8)
    return cv2.imencode(".jpg", smaller, [cv2.IMWRITE_JPEG_QUALITY, 60])[1].tobytes()


def planted(per_class: int = 40, copies: int = 8, moved: int = 6, blanks: int = 3, seed: int = 0) -> Planted:
    """`per_class` images a class (PNG), plus `copies` near-copies, `moved` images filed under the next class and
    `blanks` uniform gray images (each its own gray) spread over the classes."""
    found = Planted()
    rng = np.random.default_rng(seed)
    images = {}
    for cls, name in enumerate(CLASSES):
        for n in range(per_class):
            images[f"{name}/{n}.png"] = (shot(seed * 10_000 + cls * 1000 + n, cls), cls)
    chosen = rng.choice(sorted(images), copies + moved, replace=False)
    for number, path in enumerate(chosen[:copies]):
        copy = f"{path.split('/')[0]}/copy{number}.jpg"
        found.files[copy] = near_copy(images[path][0], seed + number)
        found.copies.append((path, copy))
    for path in chosen[copies:]:
        image, cls = images.pop(path)
        wrong = f"{CLASSES[(cls + 1) % len(CLASSES)]}/moved_{path.replace('/', '_')}"
        images[wrong] = (image, cls)
        found.moved[wrong] = CLASSES[cls]
    for n in range(blanks):
        blank = f"{CLASSES[n % len(CLASSES)]}/blank{n}.png"
        images[blank] = (np.full((SIDE, SIDE, 3), 40 + 170 * n // max(1, blanks - 1), np.uint8), -1)  # other grays: other files
        found.blanks.append(blank)
    for path, (image, _) in images.items():
        found.files[path] = cv2.imencode(".png", image)[1].tobytes()
    return found


def write_planted(root: Path, tree: Planted) -> Path:
    """The tree's files under `root` (class folders); returns `root`."""
    for path, data in tree.files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    return root
