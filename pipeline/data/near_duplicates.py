"""Near-duplicates: the same shot saved twice, resized, recompressed, slightly cropped or colour-shifted.

Each image gets three of imagehash's 64-bit hashes of its grayscale copy, side by side: the average hash (an 8x8
copy above or below its mean), the difference hash (brighter than the right-hand neighbour) and the perceptual hash
(the signs of the low DCT frequencies of a 32x32 copy): what survives resizing, JPEG at quality 60, a crop of a few
percent and a colour shift. Each alone confuses smooth, similar images that are not copies; together (192 bits)
the copies planted in the tests are at most 28 bits apart and other images 45 or more. Two images are
candidates when their hashes differ in at most `max_distance` bits. Grayscale hashes ignore colour, so two drawings
of one template in other colours can be close: a candidate pair is kept when its 16x16 colour thumbnails, less
their mean, correlate at `min_similarity` or more (the planted copies, colour-shifted too, at 0.97 and above; the
embedded sample's look-alikes at 0.92 at most). The neighbour search is scikit-learn's: the bits as +-1
vectors, whose squared Euclidean distance is four times the Hamming distance, searched by radius in chunks of bounded
memory, so CIFAR-10's 60,000 images take seconds, not the hours of a loop over every pair.
"""

import io
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass

import imagehash
import numpy as np
import pandas as pd
from PIL import Image

HASHES = (imagehash.average_hash, imagehash.dhash, imagehash.phash)
HASH_BITS = 64 * len(HASHES)
DRAFT = 32  # JPEGs are decoded at a reduced scale of at least this side (a third of the time of a full decode)
HASHED_SIDE = 64  # the copy the hashes are computed from: each reads an 8x8, 9x8 or 32x32 copy of it
COLOUR_SIDE = 16  # the colour thumbnail a candidate pair is checked with


@dataclass(frozen=True)
class Signatures:
    """Images' hashes (N, HASH_BITS) and colour thumbnails (N, 16, 16, 3), row by row."""

    bits: np.ndarray
    thumbnails: np.ndarray


def image_signature(data: bytes) -> tuple[np.ndarray, np.ndarray] | None:
    """The image's hashes (HASH_BITS booleans) and colour thumbnail; None for a file PIL cannot read."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", (DRAFT, DRAFT))
            colour = image.convert("RGB").resize((HASHED_SIDE, HASHED_SIDE), Image.Resampling.BOX)
            gray = colour.convert("L")
            bits = np.concatenate([np.asarray(kind(gray).hash, dtype=bool).reshape(-1) for kind in HASHES])
            return bits, np.asarray(colour.resize((COLOUR_SIDE, COLOUR_SIDE), Image.Resampling.BOX), np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def archive_signatures(archive: zipfile.ZipFile, members: Iterable[str]) -> tuple[list[str], Signatures]:
    """The readable members of a zip and their signatures; unreadable ones are left out (preprocess skips and lists
    them)."""
    names, bits, thumbnails = [], [], []
    for member in members:
        found = image_signature(archive.read(member))
        if found is not None:
            names.append(member)
            bits.append(found[0])
            thumbnails.append(found[1])
    shape = (COLOUR_SIDE, COLOUR_SIDE, 3)
    return names, Signatures(np.array(bits, bool).reshape(-1, HASH_BITS), np.array(thumbnails, np.uint8).reshape(-1, *shape))


def near_pairs(signatures: Signatures, max_distance: int, min_similarity: float) -> pd.DataFrame:
    """Every pair (a, b), a < b by row, whose hashes differ in at most `max_distance` bits and whose thumbnails
    correlate at `min_similarity` or more: `a`, `b`, `distance`, `similarity`, closest first."""
    pairs = _hash_pairs(signatures.bits, max_distance)
    flat = signatures.thumbnails.reshape(len(signatures.thumbnails), -1).astype(np.float32)
    flat -= flat.mean(axis=1, keepdims=True)
    flat /= np.linalg.norm(flat, axis=1, keepdims=True) + 1e-6
    similarity = np.einsum("ij,ij->i", flat[pairs["a"].to_numpy()], flat[pairs["b"].to_numpy()])
    return pairs.assign(similarity=np.round(similarity, 4))[similarity >= min_similarity].reset_index(drop=True)


def _hash_pairs(bits: np.ndarray, max_distance: int) -> pd.DataFrame:
    if len(bits) < 2:
        return pd.DataFrame({"a": [], "b": [], "distance": []}, dtype=int)
    # scikit-learn is imported here, where a search runs: importing it takes about a second, which every split
    # process would otherwise pay, the datasets whose audit looks for no near-duplicates included.
    from sklearn.neighbors import NearestNeighbors

    signs = np.where(bits, 1.0, -1.0).astype(np.float32)
    search = NearestNeighbors(radius=2 * np.sqrt(max_distance + 0.5), algorithm="brute").fit(signs)
    distances, neighbours = search.radius_neighbors(signs, return_distance=True)
    a = np.repeat(np.arange(len(bits)), [len(row) for row in neighbours])
    b = np.concatenate(neighbours).astype(int)
    hamming = np.rint(np.concatenate(distances) ** 2 / 4).astype(int)
    keep = a < b
    pairs = pd.DataFrame({"a": a[keep], "b": b[keep], "distance": hamming[keep]})
    return pairs.sort_values(["distance", "a", "b"], kind="stable").reset_index(drop=True)
