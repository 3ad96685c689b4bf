"""Stage `preprocess`: decode each manifest's images with OpenCV, convert colour, resize, store as uint8 arrays.

Output per split: `<split>_inputs.npy` (N, size, size, channels) and `<split>_labels.npy` (N,), plus `meta.json`
(classes, size, colour, the training split's per-channel mean and std, and whether models normalise with them)
and `skipped.csv`. An image that cannot be used is skipped, counted (`metrics/<dataset>/preprocess.json`) and
listed with the reason (`skipped.csv`); it never aborts the run. Before decoding, `refusal` reads the image's
header and refuses: an empty file, an unknown format, more than `MAX_PIXELS` pixels (a decompression bomb is
never decoded), content not in its name's format (a PNG or GIF named `.jpg`), a truncated or CMYK JPEG, a
16-bit PNG, an alpha channel. What passes is decoded by OpenCV, which turns EXIF-rotated JPEGs upright and
converts gray to RGB (and colour to gray) as `color` asks. Arrays are plain .npy files, so equal inputs give
byte-identical outputs.
Table datasets (Iris) are stored by `pipeline.data.tables.preprocess_table` in the same files.
"""

import json
import zipfile

import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline.config.datasets import PreprocessParams, TablePreprocess
from pipeline.core.atomic import atomic_path, write_json
from pipeline.core.paths import SPLITS, Paths
from pipeline.data.archive import open_archive
from pipeline.data.images import UNDECODABLE, decode_image, refusal
from pipeline.data.manifests import read_manifest
from pipeline.data.specs import dataset_spec
from pipeline.data.store import SplitArrays, channel_stats
from pipeline.data.tables import preprocess_table


def preprocess(dataset: str, params: PreprocessParams | TablePreprocess, paths: Paths) -> dict:
    """Write the arrays of every split; returns the kept and skipped counts per split."""
    spec = dataset_spec(dataset)
    if spec.kind == "table":
        return preprocess_table(spec, params, paths)
    summary: dict[str, dict[str, int]] = {}
    skipped: list[dict[str, str]] = []
    stats: dict[str, list[float]] = {}
    with open_archive(paths.raw_archive(dataset)) as archive, atomic_path(paths.processed_dir(dataset)) as out:
        out.mkdir()
        for name in SPLITS:
            manifest = read_manifest(paths, dataset, name)
            arrays, failures = _decode_split(archive, manifest, params, f"preprocess {dataset}/{name}")
            np.save(out / f"{name}_inputs.npy", arrays.inputs)
            np.save(out / f"{name}_labels.npy", arrays.labels)
            summary[name] = {"kept": len(arrays.labels), "skipped": len(failures)}
            skipped += [{"split": name, **failure} for failure in failures]
            if name == "train":
                stats = channel_stats(arrays.inputs)
        meta = {
            "kind": "images",
            "classes": list(spec.classes),
            "size": params.size,
            "color": params.color,
            **stats,
            "normalize": params.normalize,
        }
        (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        pd.DataFrame(skipped, columns=["split", "path", "reason"]).to_csv(
            out / "skipped.csv", index=False, lineterminator="\n"
        )
    write_json(paths.preprocess_metrics(dataset), summary)
    return summary



def _decode_split(
    archive: zipfile.ZipFile, manifest: pd.DataFrame, params: PreprocessParams, desc: str
) -> tuple[SplitArrays, list[dict[str, str]]]:
    channels = 1 if params.color == "gray" else 3
    images = np.empty((len(manifest), params.size, params.size, channels), np.uint8)
    labels = np.empty(len(manifest), np.int64)
    failures = []
    kept = 0
    for path, label in tqdm(zip(manifest["path"], manifest["label"]), total=len(manifest), desc=desc, disable=None):
        image, reason = _read(archive, path, params)
        if image is None:
            failures.append({"path": path, "reason": reason})
            continue
        images[kept], labels[kept] = image, label
        kept += 1
    return SplitArrays(images[:kept], labels[:kept]), failures


def _read(archive: zipfile.ZipFile, member: str, params: PreprocessParams) -> tuple[np.ndarray | None, str]:
    try:
        data = archive.read(member)
    except KeyError:
        return None, "missing from the raw archive"
    except (zipfile.BadZipFile, OSError) as exc:
        return None, f"unreadable in the raw archive: {exc}"
    reason = refusal(data, member)
    if reason:
        return None, reason
    image = decode_image(data, params.size, params.color)
    return image, "" if image is not None else UNDECODABLE
