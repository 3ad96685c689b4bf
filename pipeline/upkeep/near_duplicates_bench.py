"""`pipeline dev bench-near-duplicates`: the near-duplicate finder's recall and precision, one row per kind of copy.

The images are generated and photo-like, not noise: a sky-to-ground gradient, a texture of 1/f noise (the power
spectrum of natural images), a few shaded, anti-aliased shapes and sensor noise, at 300 to 500 pixels a side and
random aspect ratios, saved as JPEG at quality 92 as cameras do. Each row plants copies of some originals made one
way (`TRANSFORMS`, at the strength named) among the originals and their look-alikes: the same background with
other shapes, or another scene in the same colours. Those are the distinct-but-similar images that keep precision
honest. Recall is the share of planted copies paired with their original; precision the share of the pairs found
that are planted ones.
"""

import io
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, replace

import cv2
import numpy as np

from pipeline.config.audit import AuditParams
from pipeline.data.near_duplicates import Signatures, archive_signatures, near_pairs

Image = np.ndarray  # BGR, uint8
CAMERA_QUALITY, COPY_QUALITY = 92, 90  # JPEG quality of the originals and of a copy no row recompresses harder
MIN_SIDE, MAX_SIDE = 300, 500  # the originals' sides, as the photos of a Kaggle dataset


@dataclass(frozen=True)
class Scene:
    """What a photo is drawn from: the seeds of its colours, its texture and its shapes, and its size."""

    colours: int
    texture: int
    shapes: int
    height: int
    width: int


def texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Zero-mean noise of unit spread whose amplitude falls as 1/f, the spectrum of natural images."""
    side = 128
    fy, fx = np.meshgrid(np.fft.fftfreq(side), np.fft.fftfreq(side), indexing="ij")
    amplitude = 1 / np.maximum(np.hypot(fx, fy), 1 / side)
    spectrum = amplitude * np.exp(2j * np.pi * rng.random((side, side)))
    field = np.real(np.fft.ifft2(spectrum)).astype(np.float32)
    field = cv2.resize(field, (width, height), interpolation=cv2.INTER_CUBIC)
    return (field - field.mean()) / (field.std() + 1e-6)


def background(scene: Scene) -> np.ndarray:
    """A sky over ground: two gradients meeting at a random horizon, with 1/f texture (float BGR)."""
    rng, height, width = np.random.default_rng(scene.colours), scene.height, scene.width
    sky, ground = rng.uniform(30, 230, (2, 2, 3))  # each a top and a bottom colour
    horizon = int(height * rng.uniform(0.3, 0.7))
    rows = np.empty((height, 3), np.float32)
    rows[:horizon] = np.linspace(sky[0], sky[1], horizon)
    rows[horizon:] = np.linspace(ground[0], ground[1], height - horizon)
    image = np.repeat(rows[:, None], width, axis=1) + np.linspace(-15, 15, width)[None, :, None] * rng.choice([-1, 1])
    rough = np.where(np.arange(height)[:, None] < horizon, 10.0, 30.0)[..., None]  # the ground is rougher
    return image + rough * texture(np.random.default_rng(scene.texture), height, width)[..., None]


def draw_shapes(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """4 to 10 shaded, textured shapes (ellipses, boxes, polygons) drawn over the image, anti-aliased."""
    height, width = image.shape[:2]
    for _ in range(rng.integers(4, 11)):
        mask = np.zeros((height, width), np.uint8)
        centre = (int(rng.uniform(0.1, 0.9) * width), int(rng.uniform(0.1, 0.9) * height))
        radius = rng.uniform(0.05, 0.22) * min(height, width)
        kind = rng.integers(3)
        if kind == 0:
            axes = (int(radius), int(radius * rng.uniform(0.4, 1)))
            cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1, cv2.LINE_AA)
        else:
            corners = 4 if kind == 1 else int(rng.integers(3, 7))
            angles = np.sort(rng.uniform(0, 2 * np.pi, corners))
            points = np.stack([centre[0] + radius * np.cos(angles), centre[1] + radius * np.sin(angles)], axis=1)
            cv2.fillPoly(mask, [points.astype(np.int32)], 255, cv2.LINE_AA)
        shade = np.linspace(1.2, 0.7, height)[:, None, None] * rng.uniform(20, 235, 3)
        shade = shade + 10 * texture(rng, height, width)[..., None]
        alpha = (mask.astype(np.float32) / 255)[..., None]
        image = image * (1 - alpha) + shade * alpha
    return image


def photo(scene: Scene) -> Image:
    """The scene as a camera would save it: blurred a little, with sensor noise."""
    rng = np.random.default_rng(scene.shapes)
    image = draw_shapes(background(scene), rng)
    image = cv2.GaussianBlur(image.astype(np.float32), (0, 0), 0.8) + rng.normal(0, 3, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def jpeg(image: Image, quality: int) -> bytes:
    """The image saved as JPEG at `quality`."""
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()


def decoded(data: bytes) -> Image:
    """An encoded image read back (BGR)."""
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def crop(image: Image, share: float, rng: np.random.Generator) -> Image:
    """The image less between half of `share` and `share` of its side on each side, drawn side by side."""
    height, width = image.shape[:2]
    top, bottom = (int(height * s) for s in rng.uniform(share / 2, share, 2))
    left, right = (int(width * s) for s in rng.uniform(share / 2, share, 2))
    return image[top : height - bottom, left : width - right]


def resize(image: Image, scale: float) -> Image:
    """The image resized to `scale` of its sides (area interpolation, as a downscaling tool does)."""
    height, width = image.shape[:2]
    return cv2.resize(image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)


def colour_shift(image: Image, rng: np.random.Generator) -> Image:
    """Brightness moved by up to 20 levels, each channel by up to 12 more, contrast by up to 10%."""
    shifted = image.astype(np.float32) * rng.uniform(0.9, 1.1) + rng.uniform(-20, 20) + rng.uniform(-12, 12, 3)
    return np.clip(shifted, 0, 255).astype(np.uint8)


def mirror(image: Image) -> Image:
    """The image flipped left to right."""
    return np.ascontiguousarray(image[:, ::-1])


Transform = Callable[[Image, np.random.Generator], bytes]
TRANSFORMS: dict[str, Transform] = {
    "crop 5% a side": lambda image, rng: jpeg(crop(image, 0.05, rng), COPY_QUALITY),
    "crop 10% a side": lambda image, rng: jpeg(crop(image, 0.10, rng), COPY_QUALITY),
    "resize to 0.8": lambda image, rng: jpeg(resize(image, 0.8), COPY_QUALITY),
    "resize to 0.5": lambda image, rng: jpeg(resize(image, 0.5), COPY_QUALITY),
    "JPEG quality 70": lambda image, rng: jpeg(image, 70),
    "JPEG quality 50": lambda image, rng: jpeg(image, 50),
    "colour and brightness shift": lambda image, rng: jpeg(colour_shift(image, rng), COPY_QUALITY),
    "mirror": lambda image, rng: jpeg(mirror(image), COPY_QUALITY),
    "crop 5% + resize 0.8 + JPEG 60": lambda image, rng: jpeg(resize(crop(image, 0.05, rng), 0.8), 60),
    "crop 10% + resize 0.5 + JPEG 50": lambda image, rng: jpeg(resize(crop(image, 0.10, rng), 0.5), 50),
    "all of it, mirrored": lambda image, rng: jpeg(
        mirror(colour_shift(resize(crop(image, 0.10, rng), 0.5), rng)), 50
    ),
}


@dataclass(frozen=True)
class Row:
    """One kind of copy's figures."""

    transform: str
    copies: int
    found: int
    pairs: int
    seconds: float
    weakest_copy: float  # the least similarity of a planted pair the search made a candidate (-1: none)
    closest_other: float  # the highest similarity of any other candidate pair (-1: none)

    @property
    def recall(self) -> float:
        """The share of the planted copies paired with their original."""
        return self.found / self.copies

    @property
    def precision(self) -> float:
        """The share of the pairs found that are planted (1 when none was found)."""
        return self.found / self.pairs if self.pairs else 1.0


def scenes(originals: int, seed: int) -> tuple[list[Scene], list[Scene]]:
    """The originals' scenes, and their look-alikes: for every other original the same background (colours and
    texture) with other shapes, for the rest the same colours with another texture and other shapes."""
    rng = np.random.default_rng(seed)
    drawn = [
        Scene(*map(int, rng.integers(2**31, size=3)), *map(int, rng.integers(MIN_SIDE, MAX_SIDE + 1, 2)))
        for _ in range(originals)
    ]
    alike = [
        replace(scene, shapes=int(rng.integers(2**31)), texture=scene.texture if n % 2 else int(rng.integers(2**31)))
        for n, scene in enumerate(drawn)
    ]
    return drawn, alike


def files_signatures(files: dict[str, bytes]) -> tuple[list[str], Signatures]:
    """The paths of `files` in order and the finder's signatures of their images, read as the split reads them:
    from a zip of the raw layout."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    with zipfile.ZipFile(buffer) as archive:
        return archive_signatures(archive, sorted(files))


def finder_pairs(files: dict[str, bytes], neighbours: int, min_similarity: float = -1.0) -> dict[frozenset[str], float]:
    """The pairs of paths the split's finder checks among `files` whose similarity once aligned is `min_similarity`
    or more (by default every candidate pair; the finder keeps those at the audit's `min_similarity`), with it."""
    names, signatures = files_signatures(files)
    pairs = near_pairs(signatures, neighbours, min_similarity)
    return {
        frozenset((names[a], names[b])): similarity
        for a, b, similarity in zip(pairs["a"], pairs["b"], pairs["similarity"], strict=True)
    }


def bench(originals: int = 60, copies: int = 30, seed: int = 0, settings: AuditParams | None = None) -> list[Row]:
    """Each transform's row: `copies` copies of the first originals planted among all `originals` and their
    look-alikes."""
    settings = settings or AuditParams(model="none")
    drawn, alike = scenes(originals, seed)
    images = [photo(scene) for scene in drawn]
    base = {f"original/{n}.jpg": jpeg(image, CAMERA_QUALITY) for n, image in enumerate(images)}
    base |= {f"alike/{n}.jpg": jpeg(photo(scene), CAMERA_QUALITY) for n, scene in enumerate(alike)}
    finder_pairs(base, settings.neighbours)  # a first search, untimed: the imports it makes are not a row's time
    rows = []
    for number, (name, transform) in enumerate(TRANSFORMS.items()):
        rng = np.random.default_rng([seed, number])
        planted = {f"copy/{n}.jpg": transform(decoded(base[f"original/{n}.jpg"]), rng) for n in range(copies)}
        started = time.perf_counter()
        checked = finder_pairs(base | planted, settings.neighbours)
        seconds = time.perf_counter() - started
        truth = {frozenset((f"original/{n}.jpg", f"copy/{n}.jpg")) for n in range(copies)}
        found = {pair for pair, similarity in checked.items() if similarity >= settings.min_similarity}
        copy_scores = [checked[pair] for pair in truth if pair in checked]
        other_scores = [score for pair, score in checked.items() if pair not in truth]
        weakest, closest = min(copy_scores, default=-1.0), max(other_scores, default=-1.0)
        rows.append(Row(name, copies, len(found & truth), len(found), seconds, weakest, closest))
    return rows


def bench_table(rows: list[Row], originals: int, min_similarity: float) -> str:
    """The rows as a Markdown table."""
    lines = [
        (
            f"{originals} originals and {originals} look-alikes; each row adds its copies of {rows[0].copies} of them;"
            f" pairs kept at similarity {min_similarity} or more"
        ),
        "",
        "| copy | recall | precision | pairs found | weakest copy | closest other | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {row.transform} | {row.recall:.2f} | {row.precision:.2f} | {row.pairs} | {row.weakest_copy:.3f} |"
        f" {row.closest_other:.3f} | {row.seconds:.1f} |"
        for row in rows
    ]
    return "\n".join(lines)
