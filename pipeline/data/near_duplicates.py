"""Near-duplicates: the same shot saved again: resized, recompressed, cropped, colour-shifted or mirrored.

Two steps, a search for candidates and a check of each. Every image is read once into a 32x32 colour thumbnail.

- **Candidates**: each thumbnail gives a descriptor that a mirror image shares: per channel (brightness and two
  colour opposites, each less its mean), an 8x8 copy of the thumbnail's left-right symmetric part and the size of
  its antisymmetric part, the left half of each (the right half repeats it). At 8x8 a crop of 10% a side moves
  content by less than a cell, and a resize, recompression or colour shift hardly changes it. The `neighbours`
  closest images of each image (by cosine, at least `FLOOR`) are its candidates, unless their mean colours, the
  brightness evened out, are more than `MAX_COLOUR_GAP` levels apart in a channel. Below `EXACT` images every pair
  is compared; above, the descriptors are clustered into about sqrt(N) / 4 cells by a few rounds of k-means seeded
  with evenly spaced rows, and each image is compared with the members of its `PROBES` closest cells only:
  arithmetic of order N^1.5, not N^2, and memory of one cell's block at a time.
- **Check**: OpenCV's ECC aligns the candidate's grayscale thumbnail onto the image's with an affine map, the
  candidate mirrored first when their left-right differences are opposed (the other way too when that scores
  below `CERTAIN`). A map that is no crop and resize (scale 0.67 to 1.5 a side, little rotation or shear, at most
  30% shift) is refused, and the thumbnails as they lie are scored too (ECC can wander off a right start). The
  pair's `similarity` is the correlation of the two colour thumbnails where they overlap once aligned, less their
  mean brightness, in the quarter of the image where they differ most: the benchmark's copies (`pipeline dev
  bench-near-duplicates`) score 0.93 and above, its look-alikes (the same background with other shapes, the same
  colours) 0.83 at most. A pair is kept at `min_similarity` or more.
"""

import io
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np
import pandas as pd
from PIL import Image

SIDE = 32  # the thumbnail every step reads: a CIFAR-10 image's own size, 3 KB an image
DRAFT = 64  # JPEGs are decoded at a reduced scale of at least this side (a fraction of a full decode's time)
GRID = 8  # the descriptor's copy of the thumbnail: a crop of 10% a side moves content by less than a cell
DESCRIPTOR = 3 * 2 * GRID * GRID // 2  # 3 channels, symmetric and antisymmetric parts, the left half of each
FLOOR = 0.8  # the least descriptor cosine of a candidate (the benchmark's hardest copies: 0.82 and above)
EXACT = 4096  # up to this many images, every pair's descriptors are compared
PROBES = 4  # cells each image is compared with, above EXACT
ROUNDS = 8  # rounds of k-means
MAX_COLOUR_GAP = 30  # levels: the benchmark's colour-shifted copies are 17 apart at most
CHUNK = 2048  # query rows compared at once: memory of CHUNK x (the images compared) floats
ECC_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 3e-3)  # 0.1 ms an iteration at 32x32
CERTAIN = 0.97  # a similarity no look-alike of the benchmark reaches: the other orientation is not tried
MIRROR_EVIDENCE = 0.3  # the agreement (cosine) of left-right differences that settles the orientation alone
MIN_OVERLAP = 0.5  # the least share of the image an aligned candidate must cover


@dataclass(frozen=True)
class Signatures:
    """Images' colour thumbnails (N, SIDE, SIDE, 3, RGB) and their mirror-invariant descriptors (N, DESCRIPTOR)."""

    thumbnails: np.ndarray
    descriptors: np.ndarray

    @classmethod
    def of(cls, thumbnails: np.ndarray) -> "Signatures":
        """The signatures of these thumbnails."""
        thumbnails = np.asarray(thumbnails, np.uint8).reshape(-1, SIDE, SIDE, 3)
        descriptors = np.array([descriptor(t) for t in thumbnails], np.float32).reshape(-1, DESCRIPTOR)
        return cls(thumbnails, descriptors)


def thumbnail(data: bytes) -> np.ndarray | None:
    """The image's SIDE x SIDE RGB thumbnail (uint8); None for a file PIL cannot read."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", (DRAFT, DRAFT))
            return np.asarray(image.convert("RGB").resize((SIDE, SIDE), Image.Resampling.BOX), np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def descriptor(thumb: np.ndarray) -> np.ndarray:
    """The thumbnail's mirror-invariant descriptor: a unit vector of DESCRIPTOR floats (see the module)."""
    parts = []
    for channel in _channels(thumb):
        symmetric, antisymmetric = _halves(cv2.GaussianBlur(channel, (0, 0), 1.0))
        parts += [symmetric - symmetric.mean(), np.abs(antisymmetric)]
    vector = np.concatenate(parts)
    return vector / (np.linalg.norm(vector) + 1e-6)


def _channels(thumb: np.ndarray) -> list[np.ndarray]:
    """Brightness and two colour opposites (red-green, yellow-blue) of an RGB thumbnail, as floats."""
    red, green, blue = np.moveaxis(thumb.astype(np.float32), -1, 0)
    return [(red + green + blue) / 3, red - green, (red + green) / 2 - blue]


def _halves(channel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The left half of the GRID x GRID copy of a channel's symmetric and antisymmetric parts, flattened."""
    mirrored = channel[:, ::-1]
    parts = ((channel + mirrored) / 2, (channel - mirrored) / 2)
    small = [cv2.resize(part, (GRID, GRID), interpolation=cv2.INTER_AREA) for part in parts]
    return small[0][:, : GRID // 2].ravel(), small[1][:, : GRID // 2].ravel()


def archive_signatures(archive: zipfile.ZipFile, members: Iterable[str]) -> tuple[list[str], Signatures]:
    """The readable members of a zip and their signatures; unreadable ones are left out (preprocess skips and lists
    them)."""
    names, thumbnails = [], []
    for member in members:
        found = thumbnail(archive.read(member))
        if found is not None:
            names.append(member)
            thumbnails.append(found)
    return names, Signatures.of(np.array(thumbnails, np.uint8))


def near_pairs(signatures: Signatures, neighbours: int, min_similarity: float) -> pd.DataFrame:
    """Every pair (a, b), a < b by row, among each image's `neighbours` candidates, whose colour thumbnails correlate
    at `min_similarity` or more once aligned: `a`, `b`, `distance` (1 - similarity, in thousandths),
    `similarity`, closest first."""
    candidates = candidate_pairs(signatures.descriptors, neighbours)
    candidates = candidates[colour_gap(signatures.thumbnails, candidates["a"], candidates["b"]) <= MAX_COLOUR_GAP]
    rows = zip(candidates["a"], candidates["b"], strict=True)
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # OpenCV's threads cost more than they save on 32x32 images: ECC takes 40% less time
    try:
        similarity = np.array([aligned_similarity(signatures, a, b) for a, b in rows], np.float32)
    finally:
        cv2.setNumThreads(threads)
    pairs = candidates.assign(similarity=np.round(similarity, 4))[similarity >= min_similarity]
    distance = np.rint(1000 * (1 - pairs["similarity"])).astype(int)
    pairs = pairs.assign(distance=distance)[["a", "b", "distance", "similarity"]]
    return pairs.sort_values(["distance", "a", "b"], kind="stable").reset_index(drop=True)


def colour_gap(thumbnails: np.ndarray, a: Iterable[int], b: Iterable[int]) -> np.ndarray:
    """For each pair of rows, how far apart the two thumbnails' mean colours are once their brightness is evened
    out: the largest difference of a channel, in levels."""
    means = thumbnails.reshape(len(thumbnails), -1, 3).mean(axis=1)
    difference = means[np.asarray(a, int)] - means[np.asarray(b, int)]
    return np.abs(difference - difference.mean(axis=1, keepdims=True)).max(axis=1)


def candidate_pairs(descriptors: np.ndarray, neighbours: int) -> pd.DataFrame:
    """The pairs (a < b) where one is among the other's `neighbours` closest descriptors, at cosine FLOOR or more:
    `a`, `b`, `cosine`, by a then b."""
    count = len(descriptors)
    if count < 2 or neighbours < 1:
        return pd.DataFrame({"a": [], "b": [], "cosine": []}).astype({"a": int, "b": int, "cosine": np.float32})
    groups = [(np.arange(count), np.arange(count))] if count <= EXACT else _cells(descriptors)
    found = [_closest(descriptors, queries, members, neighbours) for queries, members in groups]
    a, b, cosine = (np.concatenate(column) for column in zip(*found, strict=True))
    low, high = np.minimum(a, b), np.maximum(a, b)
    pairs = pd.DataFrame({"a": low, "b": high, "cosine": cosine})
    return pairs.drop_duplicates(["a", "b"]).sort_values(["a", "b"], kind="stable").reset_index(drop=True)


def _closest(
    descriptors: np.ndarray, queries: np.ndarray, members: np.ndarray, neighbours: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each query row, its `neighbours` closest members at cosine FLOOR or more (itself left out): the query
    rows, member rows and cosines, CHUNK queries at a time."""
    rows, columns, cosines = [], [], []
    keep = min(neighbours, len(members) - 1)
    for start in range(0, len(queries), CHUNK):
        chunk = queries[start : start + CHUNK]
        cosine = descriptors[chunk] @ descriptors[members].T
        cosine[chunk[:, None] == members[None, :]] = -2  # an image is not its own neighbour
        if keep < 1:
            continue
        best = np.argpartition(-cosine, keep - 1, axis=1)[:, :keep]
        values = np.take_along_axis(cosine, best, axis=1)
        close = values >= FLOOR
        rows.append(np.repeat(chunk, close.sum(axis=1)))
        columns.append(members[best[close]])
        cosines.append(values[close])
    empty = np.array([], int)
    return (np.concatenate(rows) if rows else empty, np.concatenate(columns) if columns else empty,
            np.concatenate(cosines) if cosines else np.array([], np.float32))


def _cells(descriptors: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """k-means cells of the descriptors, as (the rows that compare with a cell: those with it among their PROBES
    closest centres, the cell's members) pairs."""
    count = len(descriptors)
    centres = descriptors[np.linspace(0, count - 1, max(2, int(np.sqrt(count) / 4))).astype(int)]
    for _ in range(ROUNDS):
        nearest = _nearest_centres(descriptors, centres, 1)[:, 0]
        for cell in np.unique(nearest):
            centres[cell] = descriptors[nearest == cell].mean(axis=0)
    probed = _nearest_centres(descriptors, centres, min(PROBES, len(centres)))
    return [
        (np.flatnonzero((probed == cell).any(axis=1)), np.flatnonzero(probed[:, 0] == cell))
        for cell in range(len(centres))
        if (probed[:, 0] == cell).any()
    ]


def _nearest_centres(descriptors: np.ndarray, centres: np.ndarray, count: int) -> np.ndarray:
    """Each row's `count` closest centres, closest first (ties to the lower index)."""
    closest = []
    for start in range(0, len(descriptors), CHUNK):
        distance = -(descriptors[start : start + CHUNK] @ centres.T) + 0.5 * (centres * centres).sum(axis=1)
        closest.append(np.argsort(distance, axis=1, kind="stable")[:, :count])
    return np.concatenate(closest)


def aligned_similarity(signatures: Signatures, a: int, b: int) -> float:
    """How well image b's thumbnail, aligned onto image a's, correlates with it in colour; -1 when no crop-like
    alignment is found. b is mirrored first when the left-right differences of their brightness are opposed; when
    they barely agree either way (a nearly symmetric image, below `MIRROR_EVIDENCE`) and that scores below
    `CERTAIN`, the other way is tried too."""
    thumb_a, thumb_b = signatures.thumbnails[a], signatures.thumbnails[b]
    first, second = (_halves(_channels(thumb)[0])[1] for thumb in (thumb_a, thumb_b))
    agreement = float(first @ second) / (np.linalg.norm(first) * np.linalg.norm(second) + 1e-6)
    similarity = _similarity(thumb_a, thumb_b, agreement < 0)
    if similarity >= CERTAIN or abs(agreement) >= MIRROR_EVIDENCE:
        return similarity
    return max(similarity, _similarity(thumb_a, thumb_b, agreement >= 0))


def _similarity(thumb_a: np.ndarray, thumb_b: np.ndarray, mirrored: bool) -> float:
    """The colour correlation of b aligned onto a by ECC (b mirrored first when asked), or left where it is when
    that correlates better (ECC can wander off a start that was right); -1 where neither is a crop-like alignment."""
    if mirrored:
        thumb_b = np.ascontiguousarray(thumb_b[:, ::-1])
    gray_a, gray_b = (_channels(t)[0] for t in (thumb_a, thumb_b))
    start = np.eye(2, 3, dtype=np.float32)
    unmoved = _overlap_correlation(thumb_a, thumb_b, start)
    try:
        _, warp = cv2.findTransformECC(gray_a, gray_b, start.copy(), cv2.MOTION_AFFINE, ECC_CRITERIA, None, 5)
    except cv2.error:  # ECC did not converge
        return unmoved
    return max(unmoved, _overlap_correlation(thumb_a, thumb_b, warp)) if _crop_like(warp) else unmoved


def _crop_like(warp: np.ndarray) -> bool:
    """Whether an affine map is what a crop and a resize make: scales 0.67 to 1.5, little rotation or shear (ECC's
    fit of a smooth 32x32 image wanders by up to 0.2), a shift of at most 30% of the side. Tighter bounds lose
    copies of tiny images, whose fit wanders, and spare no look-alike the correlation does not already refuse."""
    scales, skew = np.diag(warp[:, :2]), warp[[0, 1], [1, 0]]
    scaled = np.all((scales > 0.67) & (scales < 1.5))
    return bool(scaled and np.all(np.abs(skew) < 0.2) and np.all(np.abs(warp[:, 2]) < 0.3 * SIDE))


def _overlap_correlation(thumb_a: np.ndarray, thumb_b: np.ndarray, warp: np.ndarray) -> float:
    """How alike a's colours and b's warped onto a are where b covers a, each less its mean (over all channels: a
    brightness shift is forgiven, a background of another colour is not) and scaled to unit norm: one less half the
    squared difference, which is their correlation when the difference is spread evenly, taken in the quarter of
    the image where the difference is largest (as if it were everywhere), so that a look-alike differing in one
    place scores low. -1 when b covers less than MIN_OVERLAP of a."""
    flags = cv2.INTER_LINEAR + cv2.WARP_INVERSE_MAP
    warped = cv2.warpAffine(thumb_b.astype(np.float32), warp, (SIDE, SIDE), flags=flags)
    covered = cv2.warpAffine(np.ones((SIDE, SIDE), np.float32), warp, (SIDE, SIDE), flags=flags) > 0.999
    if covered.mean() < MIN_OVERLAP:
        return -1.0
    a, b = (_unit(image, covered) for image in (thumb_a.astype(np.float32), warped))
    squared = ((a - b) ** 2).sum(axis=-1)
    half = SIDE // 2
    worst = max(
        squared[rows, columns].sum() * covered.sum() / max(1, covered[rows, columns].sum())
        for rows in (slice(0, half), slice(half, SIDE))
        for columns in (slice(0, half), slice(half, SIDE))
    )
    return float(1 - worst / 2)


def _unit(image: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """The covered pixels' colours less their mean, scaled to unit norm; zero elsewhere."""
    centred = np.where(covered[..., None], image - image[covered].mean(), 0)
    return centred / (np.linalg.norm(centred) + 1e-6)
