"""A dataset of class folders with planted problems, as the audit must find them: copies of some images cropped by
up to 10% a side, resized to half, colour-shifted, recompressed as JPEG at quality 50-60 and some mirrored
(near-duplicates), images filed under another class (label errors) and blank images (outliers). Each class is a colour cast over smooth random shapes, so that a small
model learns it in a few epochs."""

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from pipeline.upkeep.near_duplicates_bench import colour_shift, crop, jpeg, mirror, resize

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
    """A copy as people make them, as hard as the benchmark's hardest row (`pipeline dev bench-near-duplicates`):
    cropped by 5-10% on each side, resized to 50-80%, colour- and brightness-shifted, mirrored for odd seeds, saved
    as JPEG at quality 50-60."""
    rng = np.random.default_rng(seed)
    copy = colour_shift(resize(crop(image, 0.10, rng), rng.uniform(0.5, 0.8)), rng)
    return jpeg(mirror(copy) if seed % 2 else copy, int(rng.integers(50, 61)))


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
