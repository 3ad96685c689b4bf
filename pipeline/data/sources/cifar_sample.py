"""The embedded CIFAR-10 sample: synthetic 32x32 images packed as the official `cifar-10-python.tar.gz`.

Each class is a shape or texture: airplane a cross, automobile a box on two wheels, bird a chevron, cat a triangle,
deer vertical stripes, dog a disc, frog a ring, horse an X, ship a hull with a mast, truck a checkerboard. Shapes vary
in colour, place, size and angle over a noisy gradient background, which leans towards a class tint (as sky goes
with airplanes) without giving the class away. In a share of images (`AMBIGUOUS`) the shape is another class's while
the tint stays, so a convnet learns the task well but not perfectly (at best about 1 - AMBIGUOUS) and a flat MLP,
which cannot follow shapes that move around, learns mostly the tints and does worse.

The archive holds the same pickled batches as the real one, so the sample goes through the real archive's reader.
"""

import gzip
import io
import pickle
import tarfile
from collections.abc import Callable

import cv2
import numpy as np

from pipeline.data.sources.cifar_batches import (
    BASE_FOLDER,
    CIFAR10_CLASSES,
    META,
    PARTS,
    SIDE,
)

AMBIGUOUS = 0.15
TINT_SHARE = 0.6
MIN_CONTRAST = 70  # least difference, per channel, between a shape's colour and the background behind it
# Background tints, RGB, in the order of CIFAR10_CLASSES: sky, road, foliage, indoors, forest, lawn, pond, field,
# sea, street; like the real photos' backgrounds they hint at the class without giving it away.
TINTS = (
    (120, 170, 230), (110, 110, 110), (150, 200, 120), (200, 160, 120), (70, 110, 50),
    (120, 190, 80), (40, 140, 90), (170, 150, 70), (30, 80, 170), (160, 150, 150),
)
PICKLE_PROTOCOL = 4
BATCH_LABELS = {"train": "training", "test": "testing"}
Drawing = Callable[[np.ndarray, np.random.Generator, np.ndarray, float, tuple[int, ...]], None]


def cifar10_sample(per_class: int, test_per_class: int, seed: int) -> bytes:
    """The bytes of a `cifar-10-python.tar.gz` holding `per_class` training and `test_per_class` test images a class.

    Each image depends only on (seed, part, class, n) and the archive has fixed timestamps, so equal arguments give
    byte-identical archives.
    """
    per_part = {"train": per_class, "test": test_per_class}
    batches: dict[str, object] = {}
    for index, (part, names) in enumerate(PARTS.items()):
        chunks = _chunks(_part(seed, index, per_part[part]), len(names))
        for number, (name, chunk) in enumerate(zip(names, chunks, strict=True), start=1):
            batches[name] = _batch(chunk, f"{BATCH_LABELS[part]} batch {number} of {len(names)}")
    batches[META] = {
        b"label_names": [name.encode() for name in CIFAR10_CLASSES],
        b"num_cases_per_batch": per_class * len(CIFAR10_CLASSES) // len(PARTS["train"]),
        b"num_vis": SIDE * SIDE * 3,
    }
    return _tar_gz({f"{BASE_FOLDER}/{name}": pickle.dumps(batch, PICKLE_PROTOCOL) for name, batch in batches.items()})


Part = tuple[np.ndarray, np.ndarray, list[bytes]]


def _part(seed: int, part: int, per_class: int) -> Part:
    """Rows (images as R, G, B planes), labels and file names of one official part, classes shuffled as in CIFAR."""
    order = np.random.default_rng([seed, part]).permutation(len(CIFAR10_CLASSES) * per_class)
    labels, numbers = np.divmod(order, per_class)
    pairs = list(zip(labels.tolist(), numbers.tolist(), strict=True))
    images = np.stack([_image(np.random.default_rng([seed, part, label, number]), label) for label, number in pairs])
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    names = [f"{CIFAR10_CLASSES[label]}_s_{number:06d}.png".encode() for label, number in pairs]
    return rows, labels, names


def _chunks(part: Part, count: int) -> list[Part]:
    rows, labels, names = part
    bounds = np.linspace(0, len(labels), count + 1).astype(int)
    return [(rows[a:b], labels[a:b], names[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def _batch(part: Part, label: str) -> dict[bytes, object]:
    rows, labels, names = part
    return {b"batch_label": label.encode(), b"labels": labels.tolist(), b"data": rows, b"filenames": names}


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=6, mtime=0) as gz, tarfile.open(
        fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT
    ) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _image(rng: np.random.Generator, label: int) -> np.ndarray:
    """One RGB image of class `label`: its tint, and its shape except in a share of AMBIGUOUS images."""
    image = _background(rng, TINTS[label])
    if rng.random() < AMBIGUOUS:
        label = (label + int(rng.integers(1, len(CIFAR10_CLASSES)))) % len(CIFAR10_CLASSES)
    centre = rng.uniform(10, SIDE - 10, size=2)
    size = rng.uniform(6, 11)
    shift = rng.uniform(MIN_CONTRAST, 256 - MIN_CONTRAST, size=3)
    colour = tuple(int(c) for c in (image[SIDE // 2, SIDE // 2] + shift) % 256)
    SHAPES[label](image, rng, centre, size, colour)
    noise = rng.normal(0, rng.uniform(3, 20), image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def _background(rng: np.random.Generator, tint: tuple[int, int, int]) -> np.ndarray:
    """A gradient between two random colours, each pulled towards the class's tint by a random share."""
    share = rng.uniform(0, TINT_SHARE, size=(2, 1))
    start, end = rng.uniform(0, 255, size=(2, 3)) * (1 - share) + np.array(tint) * share
    ramp = np.linspace(0, 1, SIDE)[:, None, None]
    image = np.broadcast_to(start + (end - start) * ramp, (SIDE, SIDE, 3))
    return np.ascontiguousarray(np.rot90(image, int(rng.integers(4))))


def _points(centre: np.ndarray, size: float, angle: float, offsets: list[tuple[float, float]]) -> np.ndarray:
    """Offsets (in units of `size`) turned by `angle` degrees around `centre`, as the int32 points cv2 draws."""
    turn = np.deg2rad(angle)
    rotation = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    return np.round(centre + size * np.array(offsets) @ rotation.T).astype(np.int32)


def _pixel(point: np.ndarray) -> tuple[int, int]:
    x, y = np.round(point).astype(int).tolist()
    return x, y


def _line(image: np.ndarray, ends: np.ndarray, colour: tuple[int, ...], thickness: int) -> None:
    cv2.line(image, _pixel(ends[0]), _pixel(ends[1]), colour, thickness, cv2.LINE_AA)


# The class shapes (in the order of CIFAR10_CLASSES): each draws around `centre`, reaching about `size` pixels from
# it, in `colour`; `rng` varies its angle, thickness or pattern.
def _airplane(image, rng, centre, size, colour):
    angle, thickness = rng.uniform(-20, 20), int(rng.integers(2, 4))
    _line(image, _points(centre, size, angle, [(-1, 0), (1, 0)]), colour, thickness)
    _line(image, _points(centre, size, angle, [(0, -0.6), (0, 0.9)]), colour, thickness)


def _automobile(image, rng, centre, size, colour):
    body = _points(centre, size, 0, [(-1, -0.45), (1, 0.25)])
    cv2.rectangle(image, _pixel(body[0]), _pixel(body[1]), colour, -1)
    wheel = tuple(int(c) for c in np.array(colour) * 0.3)
    for side in (-0.6, 0.6):
        cv2.circle(image, _pixel(_points(centre, size, 0, [(side, 0.35)])[0]), max(2, round(size * 0.3)), wheel, -1)


def _bird(image, rng, centre, size, colour):
    points = _points(centre, size, rng.uniform(-25, 25), [(-1, -0.5), (0, 0.5), (1, -0.5)])
    cv2.polylines(image, [points], False, colour, int(rng.integers(2, 4)), cv2.LINE_AA)


def _cat(image, rng, centre, size, colour):
    points = _points(centre, size, rng.uniform(-20, 20), [(-1, 0.8), (1, 0.8), (0, -0.9)])
    cv2.fillPoly(image, [points], colour, cv2.LINE_AA)


def _deer(image, rng, centre, size, colour):
    period = int(rng.integers(3, 5))
    left, top = np.round(centre - size).astype(int)
    for x in range(max(left, 0), min(left + round(2 * size), SIDE), period):
        image[max(top, 0) : top + round(2 * size), x : x + period // 2 + 1] = colour


def _dog(image, rng, centre, size, colour):
    cv2.circle(image, _pixel(centre), round(size * 0.9), colour, -1, cv2.LINE_AA)


def _frog(image, rng, centre, size, colour):
    cv2.circle(image, _pixel(centre), round(size), colour, int(rng.integers(2, 4)), cv2.LINE_AA)


def _horse(image, rng, centre, size, colour):
    angle, thickness = rng.uniform(-15, 15), int(rng.integers(2, 4))
    _line(image, _points(centre, size, angle, [(-0.8, -0.8), (0.8, 0.8)]), colour, thickness)
    _line(image, _points(centre, size, angle, [(-0.8, 0.8), (0.8, -0.8)]), colour, thickness)


def _ship(image, rng, centre, size, colour):
    hull = _points(centre, size, 0, [(-1, 0.1), (1, 0.1), (0.6, 0.7), (-0.6, 0.7)])
    cv2.fillPoly(image, [hull], colour, cv2.LINE_AA)
    _line(image, _points(centre, size, 0, [(0, 0.1), (0, -0.9)]), colour, 2)


def _truck(image, rng, centre, size, colour):
    cell = int(rng.integers(3, 5))
    left, top = np.round(centre - size).astype(int)
    for y in range(top, top + round(2 * size), cell):
        for x in range(left + (((y - top) // cell) % 2) * cell, left + round(2 * size), 2 * cell):
            image[max(y, 0) : max(y + cell, 0), max(x, 0) : max(x + cell, 0)] = colour


SHAPES: tuple[Drawing, ...] = (_airplane, _automobile, _bird, _cat, _deer, _dog, _frog, _horse, _ship, _truck)
