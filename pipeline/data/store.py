"""The preprocessed-array store: each split's inputs and labels as .npy files, and meta.json beside them.

Training, evaluation, the sanity check and the benchmark read splits from here, memory-mapped: the operating system
pages in the images a batch gathers, so no process holds a whole split. Only the preprocess stage writes, image by
image (`ArrayWriter`), with the training split's channel statistics summed as it goes (`ChannelStats`): its memory
does not grow with the dataset either.
"""

import io
import math
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths
from pipeline.core.preprocessing import problems


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
    """Read one preprocessed split, its inputs memory-mapped read-only, with an error that says which stage to run
    when it is missing."""
    _, images, labels = split_files(paths, dataset, (split_name,))
    if not (images.is_file() and labels.is_file()):
        raise PipelineError(
            f"{images.parent}: no preprocessed {split_name!r} split; run the preprocess stage first: "
            f"`dvc repro preprocess@{dataset}`"
        )
    return SplitArrays(np.load(images, mmap_mode="r"), np.load(labels))


class ArrayWriter:
    """A .npy file written one row at a time (an image, or a label), so that memory never holds the whole array.

    The header is written first for `capacity` rows and rewritten on a clean exit for the rows appended. numpy pads
    every header so that its first dimension can grow to 21 digits in place, so both headers have the same length
    and the file is byte for byte what `np.save` writes for the same rows."""

    def __init__(self, path: Path, row_shape: tuple[int, ...], dtype: np.dtype | type, capacity: int) -> None:
        self.row_shape, self.dtype, self.rows = row_shape, np.dtype(dtype), 0
        self.file = path.open("wb")
        self.file.write(self._header(capacity))

    def _header(self, rows: int) -> bytes:
        header = io.BytesIO()
        fields = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False}
        np.lib.format.write_array_header_1_0(header, {**fields, "shape": (rows, *self.row_shape)})
        return header.getvalue()

    def append(self, row: np.ndarray | int) -> None:
        """Write the next row (C order, converted to the file's dtype)."""
        self.file.write(np.ascontiguousarray(row, self.dtype).reshape(self.row_shape).tobytes())
        self.rows += 1

    def __enter__(self) -> "ArrayWriter":
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if kind is None:
            self.file.seek(0)
            self.file.write(self._header(self.rows))
        self.file.close()


class ChannelStats:
    """Per-channel mean and standard deviation of uint8 images added a few at a time, from exact integer sums of the
    values and of their squares (Python integers: no rounding, no overflow, whatever the dataset's size)."""

    def __init__(self, channels: int) -> None:
        self.values, self.sums, self.squares = 0, [0] * channels, [0] * channels

    def add(self, images: np.ndarray) -> None:
        """Count uint8 images (..., channels): one image or a few."""
        flat = images.reshape(-1, len(self.sums))
        self.values += len(flat)
        sums, squares = flat.sum(0, dtype=np.uint64), (flat.astype(np.uint32) ** 2).sum(0, dtype=np.uint64)
        for channel in range(len(self.sums)):
            self.sums[channel] += int(sums[channel])
            self.squares[channel] += int(squares[channel])

    def result(self) -> dict[str, list[float]]:
        """meta.json's `mean` and `std`: on the [0, 1] scale the models see, to 6 decimals, the std at least 1e-6."""
        channels, n = len(self.sums), self.values
        if not n:
            return {"mean": [0.0] * channels, "std": [1.0] * channels}
        mean = np.array([total / (n * 255) for total in self.sums])
        spread = [n * squares - total * total for total, squares in zip(self.sums, self.squares, strict=True)]
        std = np.maximum([math.sqrt(value) / (n * 255) for value in spread], 1e-6)
        return {"mean": mean.round(6).tolist(), "std": std.round(6).tolist()}


class DatasetMeta(BaseModel):
    """meta.json, what the preprocess stage records beside the arrays: the classes in label order, the kind of
    inputs, an image's side, colour and resize policy (a table's: its feature names, and `size` 1), and the
    training split's per-channel (or per-feature) statistics with whether inputs are standardised with them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["images", "table"] = "images"
    classes: list[str]
    size: int
    color: str | None = None
    resize: str | None = None
    features: list[str] = []
    mean: list[float]
    std: list[float]
    normalize: bool

    @property
    def is_table(self) -> bool:
        """Rows of features (a CSV dataset such as iris), not images."""
        return self.kind == "table"


def load_meta(paths: Paths, dataset: str) -> DatasetMeta:
    """The classes, size and colour the dataset was preprocessed with, validated: an error names the file."""
    path = paths.processed_dir(dataset) / "meta.json"
    if not path.is_file():
        raise PipelineError(f"{path}: not found; run the preprocess stage first: `dvc repro preprocess@{dataset}`")
    try:
        return DatasetMeta.model_validate_json(path.read_text())
    except ValidationError as exc:
        raise PipelineError(
            f"{path}: not a valid meta.json ({problems(exc, '')}); run the preprocess stage again: "
            f"`dvc repro preprocess@{dataset}`"
        ) from None
