"""A generated photo folder that looks like a user's own: shapes over cluttered backgrounds, in any of the layouts
`pipeline.data.layouts` reads, with the flaws real folders have.

Each image holds one shape of its class (circle, square, triangle, ...), of random size, place and rotation, most
often near its class's colour (60%, else any colour), over a gradient with clutter and noise. Images have random sizes and aspect ratios (96 to 320 pixels a side), are
JPEG (some PNG, some gray), and carry odd names (spaces, capitals, accents, `(2)`). Classes can be imbalanced: the
last has `1 / imbalance` as many images as the first. With `flaws`, the folder also holds a zero-byte JPEG, a
truncated JPEG, an exact duplicate of a training image in another split (or twice in one pool), `Thumbs.db`,
`.DS_Store` and a `__MACOSX/` folder, as real downloads do. `pipeline make-images` writes one; the tests and
the docs' worked example (docs/tutorials/your-own-images.md) use it.
"""

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from pipeline.core.errors import PipelineError
from pipeline.data.layouts import LAYOUTS

SHAPES = (
    "circle", "square", "triangle", "star", "cross", "ring", "diamond", "hexagon", "bar", "arrow", "heart_dots",
    "ellipse", "pentagon",
)
SPLIT_SHARES = {"train": 0.7, "val": 0.15, "test": 0.15}
MIN_SIDE, MAX_SIDE = 96, 320
TYPICAL = 0.6  # share of shapes in their class's typical colour
NAMES = ("IMG_{n:04d}.JPG", "photo ({n}).jpg", "été {n}.jpeg", "DSC{n:05d}.jpg", "scan-{n}.png")


def make_images(
    root: Path, layout: str, classes: int = 3, per_class: int = 100, imbalance: float = 1.0, seed: int = 0,
    flaws: bool = False,
) -> dict[str, int]:
    """Write a generated dataset to `root` (a new folder) in `layout`; returns the images written per class."""
    if not 2 <= classes <= len(SHAPES):
        raise PipelineError(f"classes: {classes}; choose 2 to {len(SHAPES)}")
    if layout not in LAYOUTS:
        raise PipelineError(f"layout: {layout!r} is not one of {', '.join(LAYOUTS)}")
    counts = {
        SHAPES[index].capitalize(): max(3, round(per_class / imbalance ** (index / (classes - 1))))
        for index in range(classes)
    }
    root.mkdir(parents=True, exist_ok=False)
    names, first = [], b""
    total = sum(counts.values())
    for name, data in tqdm(_files(counts, layout, seed), total=total, desc=f"write {root.name}", disable=None):
        _write(root / name, data)
        names.append(name)
        first = first or data
    if layout == "csv":
        _write(root / "labels.csv", _manifest([(name, name.split("/")[1]) for name in names]))
    if flaws:
        _add_flaws(root, names, first, layout)
    return counts


def _files(counts: dict[str, int], layout: str, seed: int) -> Iterator[tuple[str, bytes]]:
    """(path in the folder, encoded image) of every image, by class."""
    for index, (cls, count) in enumerate(counts.items()):
        parts = _parts(count) if layout == "split_folders" else [""] * count
        for number, part in enumerate(parts):
            rng = np.random.default_rng([seed, index, number])
            data, suffix = _photo(rng, index)
            name, named_suffix = NAMES[number % len(NAMES)].format(n=number + 1).rsplit(".", 1)
            suffix = f".{named_suffix}" if suffix == ".jpg" and named_suffix.lower() in ("jpg", "jpeg") else suffix
            yield _path(layout, part, cls, name, number, suffix), data


def _parts(count: int) -> list[str]:
    """The split folder of each of a class's images: 70 / 15 / 15, at least one each in val and test."""
    val = test = max(1, round(count * SPLIT_SHARES["val"]))
    return ["train"] * (count - val - test) + ["val"] * val + ["test"] * test


def _path(layout: str, part: str, cls: str, name: str, number: int, suffix: str) -> str:
    if layout == "class_folders":
        return f"{cls}/{name}{suffix}"
    if layout == "split_folders":
        return f"{part}/{cls}/{name}{suffix}"
    if layout == "names":
        return f"{cls.lower()}.{number}{suffix}"
    return f"images/{cls}/{name}{suffix}"  # csv: the manifest says the class


def _photo(rng: np.random.Generator, shape: int) -> tuple[bytes, str]:
    """One image of `SHAPES[shape]`, encoded: JPEG mostly, PNG a fifth of the time, gray a tenth."""
    height, width = (int(side) for side in rng.integers(MIN_SIDE, MAX_SIDE, size=2))
    image = _background(rng, height, width)
    side = min(height, width) * rng.uniform(0.3, 0.5)
    centre = np.array([rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height])
    _draw(image, SHAPES[shape], centre, side, rng.uniform(0, 360), _colour(rng, shape))
    image = np.clip(image + rng.normal(0, rng.uniform(3, 12), image.shape), 0, 255).astype(np.uint8)
    if rng.random() < 0.1:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if rng.random() < 0.2:
        return cv2.imencode(".png", image)[1].tobytes(), ".png"
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(70, 96))])[1].tobytes(), ".jpg"


def _colour(rng: np.random.Generator, shape: int) -> tuple[int, ...]:
    """The shape's colour: most of the time (`TYPICAL`) near its class's own hue, as real classes differ in colour
    as well as in form (roses red, daisies white), else any colour, so that form must decide those."""
    if rng.random() >= TYPICAL:
        return tuple(int(c) for c in rng.uniform(0, 255, 3))
    hue = np.uint8(round(180 * shape / len(SHAPES)))
    base = cv2.cvtColor(np.array([[[hue, 200, 220]]], np.uint8), cv2.COLOR_HSV2BGR)[0, 0].astype(float)
    return tuple(int(c) for c in np.clip(base + rng.normal(0, 25, 3), 0, 255))


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    ramp = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
    start, end = rng.uniform(30, 225, 3), rng.uniform(30, 225, 3)
    image = np.ascontiguousarray(np.broadcast_to(start + (end - start) * ramp, (height, width, 3)), np.float32)
    for _ in range(rng.integers(2, 7)):
        points = rng.uniform(0, [width, height], size=(2, 2)).astype(np.int32)
        colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
        cv2.line(image, tuple(points[0]), tuple(points[1]), colour, int(rng.integers(1, 4)))
    return image


def _draw(image: np.ndarray, shape: str, centre: np.ndarray, side: float, angle: float, colour: tuple) -> None:
    """Draw `shape` of about `side` pixels at `centre`, turned by `angle` degrees."""
    radius = side / 2
    if shape in ("circle", "ring"):
        cv2.circle(image, _pixel(centre), int(radius), colour, -1 if shape == "circle" else max(2, int(radius / 4)))
    elif shape == "ellipse":
        cv2.ellipse(image, _pixel(centre), (int(radius), int(radius * 0.45)), angle, 0, 360, colour, -1)
    elif shape == "heart_dots":
        for step in range(5):
            offset = np.array([np.cos(np.radians(angle + 72 * step)), np.sin(np.radians(angle + 72 * step))])
            cv2.circle(image, _pixel(centre + offset * radius * 0.6), max(2, int(radius / 4)), colour, -1)
    else:
        cv2.fillPoly(image, [_polygon(shape, centre, radius, angle)], colour)


def _polygon(shape: str, centre: np.ndarray, radius: float, angle: float) -> np.ndarray:
    """The corners of a polygonal shape, turned by `angle` degrees around `centre`."""
    corners = {"square": 4, "triangle": 3, "diamond": 4, "hexagon": 6, "pentagon": 5}
    if shape in corners:
        turns = np.arange(corners[shape]) * 2 * np.pi / corners[shape] + (np.pi / 4 if shape == "square" else 0)
        points = np.stack([np.cos(turns), np.sin(turns) * (1.6 if shape == "diamond" else 1)], 1)
    elif shape == "star":
        turns = np.arange(10) * np.pi / 5
        points = np.stack([np.cos(turns), np.sin(turns)], 1) * np.where(np.arange(10) % 2, 0.4, 1.0)[:, None]
    elif shape == "cross":
        points = np.array([[1, 3], [1, 1], [3, 1], [3, -1], [1, -1], [1, -3], [-1, -3], [-1, -1], [-3, -1], [-3, 1],
                           [-1, 1], [-1, 3]]) / 3
    elif shape == "bar":
        points = np.array([[-1, -0.25], [1, -0.25], [1, 0.25], [-1, 0.25]])
    else:  # arrow
        points = np.array([[-1, -0.2], [0.3, -0.2], [0.3, -0.6], [1, 0], [0.3, 0.6], [0.3, 0.2], [-1, 0.2]])
    turn = np.radians(angle)
    rotation = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    return (centre + points @ rotation.T * radius).astype(np.int32)


def _pixel(point: np.ndarray) -> tuple[int, int]:
    return int(point[0]), int(point[1])


def _add_flaws(root: Path, names: list[str], first: bytes, layout: str) -> None:
    """A zero-byte and a truncated JPEG in the first class, a copy of its first image (`first`, the bytes of
    `names[0]`) where a split may leak it (the test folder, for split folders), and the clutter macOS and Windows
    leave."""
    first_name = names[0]
    truncated = cv2.imencode(".jpg", np.full((64, 64, 3), 128, np.uint8))[1].tobytes()[:300]
    flawed = {"zero-byte": b"", "truncated": truncated, "copy": first}
    added = [_flawed_name(first_name, layout, tag, index) for index, tag in enumerate(flawed)]
    for name, data in zip(added, flawed.values(), strict=True):
        _write(root / name, data)
    if layout == "csv":
        _write(root / "labels.csv", _manifest([(name, name.split("/")[1]) for name in [*names, *added]]))
    for clutter in ("Thumbs.db", ".DS_Store", f"__MACOSX/{Path(first_name).parent}/._{Path(first_name).name}"):
        _write(root / clutter, b"\x00metadata")


def _flawed_name(first: str, layout: str, tag: str, index: int) -> str:
    """Where a flawed file goes: beside the first image, in its class (`<class>.9000<index>.jpg` for names)."""
    if layout == "names":
        return f"{first.split('.')[0]}.9000{index}{Path(first).suffix if tag == 'copy' else '.jpg'}"
    folder = Path(first.replace("train/", "test/", 1) if tag == "copy" else first).parent
    return f"{folder}/{tag} {Path(first).stem}{Path(first).suffix if tag == 'copy' else '.jpg'}"


def _manifest(rows: list[tuple[str, str]]) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["path", "label"])
    writer.writerows(rows)
    return text.getvalue().encode()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
