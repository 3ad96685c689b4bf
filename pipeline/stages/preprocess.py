"""Stage `preprocess`: decode each manifest's images with OpenCV, convert colour, make square, store as uint8 arrays.

Output per split: `<split>_inputs.npy` (N, size, size, channels) and `<split>_labels.npy` (N,), plus `meta.json`
(classes, size, colour, how non-square images were made square, the training split's per-channel mean and std, and
whether models normalise with them) and `skipped.csv`. An image that cannot be used is skipped, counted
(`metrics/<dataset>/preprocess.json`) and listed with the reason (`skipped.csv`); it never aborts the run, unless
it leaves the train split without any image of a class (a model cannot learn a class it never sees): that is an
error naming the class and the images skipped, and nothing is written. The split draws only images download found
usable, so these skips are a second line of defence (an image whose header passes but whose data does not decode).
Before decoding, `refusal` reads the image's header and refuses: an empty file, an unknown format, more than
`MAX_PIXELS` pixels (a decompression bomb is never decoded), content not in its name's format (a PNG or GIF named
`.jpg`), a truncated or CMYK JPEG, a 16-bit PNG, an alpha channel. What passes is decoded by OpenCV, which turns
EXIF-rotated JPEGs upright and converts gray to RGB (and colour to gray) as `color` asks, then squashed, cropped or
padded to the square (`resize`). `preprocess.json` also says how large the decoded images were (`sizes`), to choose
`image_size` by. Images are written one at a time and the channel statistics summed as they come, so memory stays flat
however large the dataset. Arrays are plain .npy files, so equal inputs give byte-identical outputs.
Table datasets (Iris) are stored by `pipeline.data.tables.preprocess_table` in the same files.
"""

import json
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline.config.datasets import PreprocessParams, TablePreprocess
from pipeline.config.params import Params
from pipeline.core.atomic import atomic_path, write_json
from pipeline.core.errors import PipelineError
from pipeline.core.paths import SPLITS, Paths
from pipeline.data.archive import open_archive
from pipeline.data.classes import few, gist, skip_counts
from pipeline.data.images import UNDECODABLE, decoded, fit_square, refusal
from pipeline.data.manifests import read_manifest
from pipeline.data.raw import read_index
from pipeline.data.store import ArrayWriter, ChannelStats
from pipeline.data.tables import preprocess_table
from pipeline.stages.command import dataset_named, stage_command


def preprocess(dataset: str, params: PreprocessParams | TablePreprocess, paths: Paths) -> dict:
    """Write the arrays of every split; returns the kept and skipped counts per split and the decoded sizes."""
    index = read_index(paths, dataset)
    if index.kind == "table":
        return preprocess_table(dataset, index.classes, params, paths)
    summary: dict[str, dict] = {}
    skipped: list[dict[str, str]] = []
    stats = ChannelStats(1 if params.color == "gray" else 3)
    sizes = []
    with open_archive(paths.raw_archive(dataset)) as archive, atomic_path(paths.processed_dir(dataset)) as out:
        out.mkdir()
        for name in SPLITS:
            manifest = read_manifest(paths, dataset, name)
            split = _Split(out, name, len(manifest), params, stats if name == "train" else None)
            with split.inputs, split.labels:
                for path, label in tqdm(
                    zip(manifest["path"], manifest["label"]), total=len(manifest),
                    desc=f"preprocess {dataset}/{name}", disable=None,
                ):
                    split.add(_read(archive, path, params), path, label)
            if name == "train":
                _refuse_a_lost_class(split, index.classes, dataset)
            summary[name] = {"kept": split.labels.rows, "skipped": len(split.failures)}
            skipped += [{"split": name, **failure} for failure in split.failures]
            sizes.append(split.sizes[: split.labels.rows])
        meta = {
            "kind": "images",
            "classes": list(index.classes),
            "size": params.image_size,
            "color": params.color,
            "resize": params.resize,
            **stats.result(),
            "normalize": params.normalize,
        }
        (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        pd.DataFrame(skipped, columns=["split", "path", "reason"]).to_csv(
            out / "skipped.csv", index=False, lineterminator="\n"
        )
    summary["sizes"] = size_report(np.concatenate(sizes))
    write_json(paths.preprocess_metrics(dataset), summary)
    return summary


class _Split:
    """One split being written: its two array files, the images' decoded sizes, the failures, and (for the
    training split) the channel statistics."""

    def __init__(self, out: Path, name: str, capacity: int, params: PreprocessParams, stats: ChannelStats | None):
        shape = (params.image_size, params.image_size, 1 if params.color == "gray" else 3)
        self.inputs = ArrayWriter(out / f"{name}_inputs.npy", shape, np.uint8, capacity)
        self.labels = ArrayWriter(out / f"{name}_labels.npy", (), np.int64, capacity)
        self.sizes = np.zeros((capacity, 2), np.int64)  # width, height
        self.failures: list[dict[str, str]] = []
        self.failed_labels: list[int] = []  # of each failure
        self.listed: Counter[int] = Counter()  # the manifest's images of each label
        self.kept: Counter[int] = Counter()
        self.size, self.resize, self.stats = params.image_size, params.resize, stats

    def add(self, read: tuple[np.ndarray | None, str], path: str, label: int) -> None:
        """Store a decoded image, made square, with its label; or list why it was skipped."""
        image, reason = read
        self.listed[label] += 1
        if image is None:
            self.failures.append({"path": path, "reason": reason})
            self.failed_labels.append(label)
            return
        self.kept[label] += 1
        self.sizes[self.labels.rows] = image.shape[1], image.shape[0]
        square = fit_square(image, self.size, self.resize)
        self.inputs.append(square)
        self.labels.append(label)
        if self.stats is not None:
            self.stats.add(square)


def _refuse_a_lost_class(split: _Split, classes: tuple[str, ...], dataset: str) -> None:
    """Stop when the skips took every image the train manifest lists of a class, naming it and its images (the
    rows `skipped.csv` would hold)."""
    lost = [label for label in sorted(split.listed) if not split.kept[label]]
    if not lost:
        return
    failures = [failure for failure, label in zip(split.failures, split.failed_labels, strict=True) if label == lost[0]]
    reasons = Counter(gist(failure["reason"]) for failure in failures)
    more = f" (nor of {len(lost) - 1} more classes)" if len(lost) > 1 else ""
    raise PipelineError(
        f"preprocess.{dataset}: the train split has no image of class {classes[lost[0]]!r} left{more}: "
        f"{skip_counts(reasons)} ({few([failure['path'] for failure in failures])}: the rows skipped.csv would "
        "hold); a model cannot learn a class it never sees: replace those images in the source and run the download "
        "stage again (nothing was written)"
    )


def size_report(sizes: np.ndarray) -> dict:
    """How large the decoded images were, before resizing: min, median and max of the width and of the height, and
    how many images have each size once both sides are rounded to the nearest power of two (`"256x128"`: width 256,
    height 128)."""
    if not len(sizes):
        return {"images": 0}
    report: dict = {"images": len(sizes)}
    for axis, side in enumerate(("width", "height")):
        values = sizes[:, axis]
        report[side] = {"min": int(values.min()), "median": float(np.median(values)), "max": int(values.max())}
    rounded = 2 ** np.round(np.log2(sizes)).astype(np.int64)
    pairs, counts = np.unique(rounded, axis=0, return_counts=True)
    report["buckets"] = {f"{width}x{height}": int(count) for (width, height), count in zip(pairs, counts, strict=True)}
    return report


def _read(archive: zipfile.ZipFile, member: str, params: PreprocessParams) -> tuple[np.ndarray | None, str]:
    """The image decoded at its own size, or None and why not."""
    try:
        data = archive.read(member)
    except KeyError:
        return None, "missing from the raw archive"
    except (zipfile.BadZipFile, OSError) as exc:
        return None, f"unreadable in the raw archive: {exc}"
    reason = refusal(data, member)
    if reason:
        return None, reason
    image = decoded(data, params.color)
    return image, "" if image is not None else UNDECODABLE


def preprocess_named(dataset: str, params: Params) -> dict:
    """Preprocess the dataset named with its `preprocess` block, as its command does; returns the counts."""
    name = dataset_named(params, dataset)
    return preprocess(name, params.preprocess[name], Paths())


if __name__ == "__main__":
    stage_command(preprocess_named)
