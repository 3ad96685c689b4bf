"""The embedded sample: synthetic dogs-vs-cats photos in the real Kaggle layout, generated offline from a seed.

A "cat" is a head with pointed upright ears and a small nose; a "dog" has floppy ears hanging at the sides and a
long muzzle. Heads vary in size, place, colour and contrast over cluttered, noisy backgrounds, and images vary in
size and JPEG quality. In a share of images (`AMBIGUOUS`) the animal wears the other class's features, so a model
can learn the task well but not perfectly: the best possible accuracy is about 1 - AMBIGUOUS.
"""

import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import cv2
import numpy as np

CLASSES = ("cat", "dog")
AMBIGUOUS = 0.12
MIN_SIDE, MAX_SIDE = 140, 360
# From this many images on, they are drawn in worker processes, one a core (up to MAX_WORKERS); below it, starting
# the workers (each imports NumPy and OpenCV) would cost more than they save.
PARALLEL_FROM = 512
MAX_WORKERS = 8
CHUNK = 32


def catsdogs_sample(per_class: int, seed: int) -> Iterator[tuple[str, bytes]]:
    """Yield (`train/<class>.<n>.jpg`, JPEG bytes) for `per_class` images of each class, cats then dogs.

    Each image depends only on (seed, class, n), so the archive is byte-identical for equal arguments, however
    many processes draw it.
    """
    keys = [(seed, class_index, number) for class_index in range(len(CLASSES)) for number in range(per_class)]
    workers = min(len(os.sched_getaffinity(0)), MAX_WORKERS)
    if len(keys) < PARALLEL_FROM or workers < 2:
        yield from map(_member, keys)
        return
    # spawn: fresh workers, whatever threads the calling process has started (forking those can deadlock)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from pool.map(_member, keys, chunksize=CHUNK)


def _member(key: tuple[int, int, int]) -> tuple[str, bytes]:
    """The sample's image number `number` of class `class_index`, drawn from (seed, class, number) alone."""
    seed, class_index, number = key
    name = CLASSES[class_index]
    rng = np.random.default_rng([seed, class_index, number])
    return f"train/{name}.{number}.jpg", _encode(_draw_animal(rng, looks_like_cat=_looks_like_cat(rng, name)), rng)


def _looks_like_cat(rng: np.random.Generator, name: str) -> bool:
    is_cat = name == "cat"
    return is_cat if rng.random() >= AMBIGUOUS else not is_cat


def _draw_animal(rng: np.random.Generator, *, looks_like_cat: bool) -> np.ndarray:
    height, width = (int(side) for side in rng.integers(MIN_SIDE, MAX_SIDE, size=2))
    image = _background(rng, height, width)
    side = min(height, width)
    radius = rng.uniform(0.16, 0.28) * side
    centre = np.array([rng.uniform(0.35, 0.65) * width, rng.uniform(0.4, 0.7) * height])
    fur = _colour(rng)
    if looks_like_cat:
        _cat_ears(image, rng, centre, radius, fur)
    else:
        _dog_ears(image, rng, centre, radius, fur)
    _ellipse(image, centre, (radius, radius * rng.uniform(0.85, 1.1)), rng.uniform(-15, 15), fur)
    _face(image, rng, centre, radius, fur, long_muzzle=not looks_like_cat)
    noisy = rng.standard_normal(image.shape, dtype=np.float32)  # float32 draws: half the time of float64's
    noisy *= rng.uniform(4, 14)
    noisy += image
    return np.clip(noisy, 0, 255, out=noisy).astype(np.uint8)


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    ramp = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
    start, end = _colour(rng), _colour(rng)
    image = np.ascontiguousarray(np.broadcast_to(start + (end - start) * ramp, (height, width, 3)).astype(np.uint8))
    for _ in range(rng.integers(3, 9)):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        size = int(rng.integers(5, max(6, min(height, width) // 4)))
        colour = tuple(int(c) for c in _colour(rng))
        if rng.random() < 0.5:
            cv2.circle(image, centre, size, colour, -1, cv2.LINE_AA)
        else:
            cv2.rectangle(image, centre, (centre[0] + size, centre[1] + size // 2), colour, -1)
    return image


def _cat_ears(image: np.ndarray, rng: np.random.Generator, centre: np.ndarray, radius: float, fur: np.ndarray) -> None:
    for direction in (-1, 1):
        base = centre + radius * np.array([direction * rng.uniform(0.35, 0.65), -rng.uniform(0.6, 0.8)])
        tip = base + radius * np.array([direction * rng.uniform(0.0, 0.35), -rng.uniform(0.55, 0.9)])
        half_width = radius * rng.uniform(0.25, 0.4)
        corners = [base - [half_width, -radius * 0.2], base + [half_width, radius * 0.2], tip]
        cv2.fillPoly(image, [np.round(corners).astype(np.int32)], _shade(fur, rng), cv2.LINE_AA)


def _dog_ears(image: np.ndarray, rng: np.random.Generator, centre: np.ndarray, radius: float, fur: np.ndarray) -> None:
    for direction in (-1, 1):
        ear_centre = centre + radius * np.array([direction * rng.uniform(0.85, 1.05), rng.uniform(0.0, 0.35)])
        axes = (radius * rng.uniform(0.22, 0.32), radius * rng.uniform(0.6, 0.85))
        _ellipse(image, ear_centre, axes, direction * rng.uniform(5, 30), _shade(fur, rng))


def _face(
    image: np.ndarray, rng: np.random.Generator, centre: np.ndarray, radius: float, fur: np.ndarray, *, long_muzzle: bool
) -> None:
    dark = tuple(int(c) for c in fur * rng.uniform(0.1, 0.4))
    for direction in (-1, 1):
        eye = centre + radius * np.array([direction * 0.38, -0.2])
        _ellipse(image, eye, (radius * 0.1, radius * rng.uniform(0.07, 0.14)), 0, np.array(dark))
    if long_muzzle:
        muzzle = centre + radius * np.array([0, rng.uniform(0.35, 0.5)])
        _ellipse(image, muzzle, (radius * rng.uniform(0.3, 0.42), radius * rng.uniform(0.35, 0.5)), 0, _shade(fur, rng))
        _ellipse(image, muzzle + [0, -radius * 0.2], (radius * 0.15, radius * 0.1), 0, np.array(dark))
    else:
        nose = centre + radius * np.array([0, 0.25])
        corners = [nose + [-radius * 0.1, -radius * 0.06], nose + [radius * 0.1, -radius * 0.06], nose + [0, radius * 0.08]]
        cv2.fillPoly(image, [np.round(corners).astype(np.int32)], dark, cv2.LINE_AA)


def _ellipse(image: np.ndarray, centre: np.ndarray, axes: tuple[float, float], angle: float, colour: np.ndarray) -> None:
    cv2.ellipse(
        image,
        (int(round(centre[0])), int(round(centre[1]))),
        (max(1, int(round(axes[0]))), max(1, int(round(axes[1])))),
        float(angle),
        0,
        360,
        tuple(int(c) for c in colour),
        -1,
        cv2.LINE_AA,
    )


def _colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(20, 235, size=3).astype(np.float32)


def _shade(colour: np.ndarray, rng: np.random.Generator) -> tuple[int, ...]:
    return tuple(int(c) for c in np.clip(colour * rng.uniform(0.75, 1.2), 0, 255))


def _encode(image: np.ndarray, rng: np.random.Generator) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(70, 96))])
    if not ok:
        raise RuntimeError("OpenCV failed to encode a sample image")
    return data.tobytes()
