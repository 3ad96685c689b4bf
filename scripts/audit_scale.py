"""How long does the near-duplicate search take on CIFAR-10's scale? Time it on made-up 32x32 images.

    uv run python scripts/audit_scale.py                 # 60,000 PNGs, 600 of them near-copies of others
    uv run python scripts/audit_scale.py --images 5000

It writes `--images` 32x32 PNGs (smooth random colour fields, as varied as photos at that size, a share of them
near-copies made by `tests.helpers.planted.near_copy`: cropped by 5-10% a side, resized to 50-80%, colour-shifted,
every other one mirrored, saved as JPEG at quality 50-60) into one zip, as the download stage
stores a dataset, then times what the split does with an audit on (`archive_signatures`, `near_pairs` with the
audit's defaults) and prints the seconds, the peak memory and the planted copies found.
"""

import argparse
import resource
import tempfile
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np

from pipeline.config.audit import AuditParams
from pipeline.data.near_duplicates import archive_signatures, near_pairs
from tests.helpers.planted import near_copy


def _images(count: int, copies: int, seed: int) -> tuple[dict[str, bytes], set[frozenset[str]]]:
    rng = np.random.default_rng(seed)
    files, planted, originals = {}, set(), {}
    for n in range(count - copies):
        field = cv2.resize(rng.random((4, 4, 3)).astype(np.float32) * 255, (32, 32), interpolation=cv2.INTER_CUBIC)
        image = np.clip(field + rng.normal(0, 12, field.shape), 0, 255).astype(np.uint8)
        files[f"train/{n}.png"] = cv2.imencode(".png", image)[1].tobytes()
        if n < copies:
            originals[f"train/{n}.png"] = cv2.resize(image, (64, 64))  # the copy starts from a larger shot of it
    for n, (path, image) in enumerate(originals.items()):
        copy = f"test/copy{n}.jpg"
        files[copy] = near_copy(image, n)
        planted.add(frozenset((path, copy)))
    return files, planted


def main() -> None:
    """Write the images, time the search, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=60_000)
    parser.add_argument("--copies", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    files, planted = _images(args.images, args.copies, args.seed)
    defaults = AuditParams(model="any")
    with tempfile.TemporaryDirectory() as folder:
        archive_path = Path(folder) / "images.zip"
        with zipfile.ZipFile(archive_path, "w") as archive:
            for path, data in files.items():
                archive.writestr(path, data)
        started = time.perf_counter()
        with zipfile.ZipFile(archive_path) as archive:
            names, signatures = archive_signatures(archive, list(files))
        hashed = time.perf_counter()
        pairs = near_pairs(signatures, defaults.neighbours, defaults.min_similarity)
        searched = time.perf_counter()
    found = {frozenset((names[a], names[b])) for a, b in zip(pairs["a"], pairs["b"], strict=True)}
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{len(files)} images: thumbnails {hashed - started:.1f} s, search and check {searched - hashed:.1f} s, "
          f"peak memory {peak_mb:.0f} MB; planted copies found {len(found & planted)} of {len(planted)}, "
          f"other pairs {len(found - planted)}")


if __name__ == "__main__":
    main()
