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
Table datasets (Iris) are stored by `pipeline.tables.preprocess_table` in the same files.
"""

import io
import json
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from pipeline.atomic import atomic_path, write_json
from pipeline.datasets import dataset_spec
from pipeline.errors import PipelineError
from pipeline.params import PreprocessParams, TablePreprocess
from pipeline.paths import SPLITS, Paths
from pipeline.rawdata import open_archive
from pipeline.split import read_manifest
from pipeline.tables import preprocess_table

# A 50-megapixel photo decodes to 150 MB of RGB; anything larger is more likely a decompression bomb than a training
# image, and would be shrunk to a few dozen pixels anyway.
MAX_PIXELS = 50_000_000
TOO_LARGE = f"more than {MAX_PIXELS:,} pixels; not decoded (downscale it)"
UNDECODABLE = "not a decodable image"
JPEG = ("JPEG", "MPO")  # Pillow names a camera's multi-picture JPEG "MPO"
FORMATS = {".jpg": JPEG, ".jpeg": JPEG, ".png": ("PNG",), ".bmp": ("BMP",)}
PNG_BIT_DEPTH = 24  # offset of the bit depth: signature (8), IHDR length and type (8), width and height (8)


@dataclass(frozen=True)
class SplitArrays:
    """One preprocessed split: its inputs, uint8 images (N, H, W, C) or float32 table rows (N, features), and
    int64 labels (N,)."""

    inputs: np.ndarray
    labels: np.ndarray


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


def split_files(paths: Paths, dataset: str, split_names: tuple[str, ...]) -> list[Path]:
    """The files a consumer of these preprocessed splits depends on: meta.json and each split's two arrays."""
    folder = paths.processed_dir(dataset)
    arrays = [folder / f"{name}_{kind}.npy" for name in split_names for kind in ("inputs", "labels")]
    return [folder / "meta.json", *arrays]


def load_split(paths: Paths, dataset: str, split_name: str) -> SplitArrays:
    """Read one preprocessed split, with an error that says which stage to run when it is missing."""
    _, images, labels = split_files(paths, dataset, (split_name,))
    if not (images.is_file() and labels.is_file()):
        raise PipelineError(f"{images.parent}: no preprocessed {split_name!r} split; run the preprocess stage first")
    return SplitArrays(np.load(images), np.load(labels))


def channel_stats(images: np.ndarray) -> dict[str, list[float]]:
    """Per-channel mean and standard deviation of uint8 images, on the [0, 1] scale the models see."""
    if not len(images):
        return {"mean": [0.0] * images.shape[-1], "std": [1.0] * images.shape[-1]}
    axes = (0, 1, 2)
    mean = images.mean(axis=axes, dtype=np.float64) / 255
    std = np.maximum(images.std(axis=axes, dtype=np.float64) / 255, 1e-6)
    return {"mean": mean.round(6).tolist(), "std": std.round(6).tolist()}


def load_meta(paths: Paths, dataset: str) -> dict:
    """The classes, size and colour the dataset was preprocessed with."""
    path = paths.processed_dir(dataset) / "meta.json"
    if not path.is_file():
        raise PipelineError(f"{path}: not found; run the preprocess stage first")
    return json.loads(path.read_text())


def decode_image(data: bytes, size: int, color: str) -> np.ndarray | None:
    """Decode image bytes to a (size, size, channels) uint8 array (RGB or gray), or None if undecodable."""
    flag = cv2.IMREAD_GRAYSCALE if color == "gray" else cv2.IMREAD_COLOR
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    except cv2.error:
        return None
    if image is None:
        return None
    if color == "rgb":
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    return image.reshape(size, size, -1)


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


def refusal(data: bytes, name: str) -> str:
    """Why the encoded image `name` must be skipped, judged from its header without decoding it; "" if it may be
    decoded."""
    if not data:
        return "empty file"
    try:
        with warnings.catch_warnings():  # Pillow warns of (and refuses) huge images on its own, above our limit
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            header = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        return TOO_LARGE
    except Exception:  # a corrupt header can fail in almost any way
        return UNDECODABLE
    with header:
        return _header_refusal(header, data, Path(name).suffix.lower())


def _header_refusal(header: Image.Image, data: bytes, suffix: str) -> str:
    """The checks of `refusal` that need the opened header: size, format, colour space, bit depth, alpha.

    A JPEG is whole when an end-of-image marker follows its last start-of-scan marker (in the compressed data a
    0xFF byte is always followed by 0x00 or a restart marker, so the last ones found are real markers).
    """
    if header.width * header.height > MAX_PIXELS:
        return TOO_LARGE
    if header.format not in FORMATS.get(suffix, ()):
        return f"{header.format} data named {suffix}; convert it to the format its name says"
    if header.format in JPEG and header.mode == "CMYK":
        return "CMYK JPEG; convert it to RGB"
    if header.format in JPEG and data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda"):
        return "truncated JPEG (no end-of-image marker); download it again"
    if header.format == "PNG" and data[PNG_BIT_DEPTH] == 16:
        return "16-bit PNG; convert it to 8 bits per channel"
    if "A" in header.getbands():
        return f"{header.mode} image with an alpha channel; flatten it to RGB"
    return ""
