"""The preprocessed-array store: each split's inputs and labels as .npy files, and meta.json beside them.

Training, evaluation, the sanity check and the benchmark read splits from here; only the preprocess stage writes.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths


@dataclass(frozen=True)
class SplitArrays:
    """One preprocessed split: its inputs, uint8 images (N, H, W, C) or float32 table rows (N, features), and
    int64 labels (N,)."""

    inputs: np.ndarray
    labels: np.ndarray



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
