"""CIFAR-10's python-pickle batches, in the official tar (any compression) or an extracted folder.

The batches are read through a restricted unpickler that cannot run code, checked to hold what CIFAR-10 batches
hold, and turned into members `<part>/<class>/<name>`, split folders (see `pipeline.data.layouts`): lossless PNGs
numbered by their index in the official part (`train/airplane/00017.png`). The embedded sample
(`pipeline.data.sources.cifar_sample`) is a pickle archive too, so it goes through the same reader as the real one.
"""

import io
import itertools
import pickle
import tarfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, TypeVar

import cv2
import numpy as np
from tqdm import tqdm

from pipeline.core.errors import PipelineError
from pipeline.data.archive import link_target, refuse_unsafe
from pipeline.data.sources.cifar_official import FILENAME

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
BASE_FOLDER = "cifar-10-batches-py"
PARTS = {"train": tuple(f"data_batch_{n}" for n in range(1, 6)), "test": ("test_batch",)}
META = "batches.meta"
MEMBERS = (*PARTS["train"], *PARTS["test"], META)
SIDE = 32
FORMATS = f"{FILENAME}, an extracted {BASE_FOLDER}/ folder, or images in one of the layouts (train/<class>/ + test/<class>/)"

Batch = tuple[np.ndarray, np.ndarray]
Batches = dict[str, Batch]
Member = tuple[str, bytes]
T = TypeVar("T")


def read_tar(file: BinaryIO, source: str, key: str) -> Batches:
    """The checked batches of an open `cifar-10-python.tar.gz` (any compression, any folder inside).

    `source` names the archive in errors; `key` is the params key the user fixes. An entry that points outside the
    archive's folder (an absolute path, `..`, a link leading out) is refused, though nothing is ever extracted. The
    archive is read to its end, so a compressed one whose data does not match its checksum is an error.
    """
    try:
        tar = tarfile.open(fileobj=file, mode="r:*")
    except tarfile.TarError:
        raise PipelineError(f"{key}: {source} is not a tar archive (unknown format); point it at {FORMATS}") from None
    found: dict[str, object] = {}
    try:
        with tar:
            for member in tar:
                refuse_unsafe([member.name, link_target(member)], source, key)
                name = member.name.rsplit("/", 1)[-1]
                if member.isfile() and name in MEMBERS and name not in found:
                    data = tar.extractfile(member).read()  # type: ignore[union-attr]  # a file member has a body
                    found[name] = _unpickle(data, f"{member.name} in {source}", key)
            while tar.fileobj.read(1 << 20):  # read to the end, where gzip (bz2, xz) checks the data's checksum
                pass
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise PipelineError(f"{key}: {source} is a corrupt archive ({exc}); download it again") from None
    return _checked(found, source, key)


def read_folder(folder: Path, key: str) -> Batches:
    """The checked batches of an extracted `cifar-10-batches-py/` folder."""
    files = {name: folder / name for name in MEMBERS if (folder / name).is_file()}
    found = {name: _unpickle(path.read_bytes(), str(path), key) for name, path in files.items()}
    return _checked(found, str(folder), key)


def png_members(batches: Batches) -> Iterator[Member]:
    """The images of checked batches as members `<part>/<class>/<n>.png`, n their index in the official part."""
    return progress(_png_members(batches), total=sum(len(labels) for _, labels in batches.values()))


def progress(items: Iterable[T], total: int) -> Iterator[T]:
    """`items` behind a progress bar of CIFAR-10 images, shown only on a terminal."""
    return iter(tqdm(items, total=total, desc="cifar10", unit="img", disable=None, leave=False))


class _BatchUnpickler(pickle.Unpickler):
    """Builds only what a batch holds (numpy arrays, plain values), so a batch file cannot run code."""

    ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),  # pickled by Python 2 / numpy 1, as the official batches are
        ("numpy._core.multiarray", "_reconstruct"),  # pickled by numpy 2, as the sample is
    }

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"unexpected {module}.{name}")
        return super().find_class(module, name)


def _unpickle(data: bytes, where: str, key: str) -> object:
    try:
        return _BatchUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as exc:  # a corrupt pickle can fail in almost any way
        raise PipelineError(f"{key}: {where} is not a readable CIFAR-10 batch ({exc!r}); download it again") from None


def _checked(found: dict[str, object], source: str, key: str) -> Batches:
    """The data batches as (rows, labels), once every batch is there and holds what CIFAR-10 batches hold."""
    missing = [name for name in MEMBERS if name not in found]
    if missing:
        raise PipelineError(
            f"{key}: {source} lacks {', '.join(missing)}; it needs all of {', '.join(MEMBERS)}: download "
            f"{FILENAME} again or point at a complete {BASE_FOLDER}/ folder"
        )
    meta = found[META]
    if not isinstance(meta, dict) or meta.get(b"label_names") != [name.encode() for name in CIFAR10_CLASSES]:
        raise PipelineError(f"{key}: {META} in {source} does not name the CIFAR-10 classes; is it CIFAR-10?")
    return {name: _batch(found[name], f"{name} in {source}", key) for name in MEMBERS if name != META}


def _batch(raw: object, where: str, key: str) -> Batch:
    rows = raw.get(b"data") if isinstance(raw, dict) else None
    labels = np.asarray(raw.get(b"labels") if isinstance(raw, dict) else None)
    valid = (
        isinstance(rows, np.ndarray)
        and rows.dtype == np.uint8
        and rows.shape[1:] == (3 * SIDE * SIDE,)
        and labels.shape == rows.shape[:1]
        and labels.dtype.kind in "iu"
        and bool(((labels >= 0) & (labels < len(CIFAR10_CLASSES))).all())
    )
    if not valid:
        raise PipelineError(
            f"{key}: {where} is not a CIFAR-10 batch (needs uint8 data of 3072 values a row and a label 0-9 "
            "for each); download it again"
        )
    return rows, labels


def _png_members(batches: Batches) -> Iterator[Member]:
    for part, names in PARTS.items():
        images = itertools.chain.from_iterable(_bgr_images(*batches[name]) for name in names)
        for index, (image, label) in enumerate(images):
            yield f"{part}/{CIFAR10_CLASSES[label]}/{index:05d}.png", _png(image)


def _bgr_images(rows: np.ndarray, labels: np.ndarray) -> Iterator[tuple[np.ndarray, int]]:
    """A batch's rows (R, G, B planes of 32x32) as 32x32x3 pixels in OpenCV's B, G, R order, with their labels."""
    images = np.ascontiguousarray(rows.reshape(-1, 3, SIDE, SIDE)[:, ::-1].transpose(0, 2, 3, 1))
    return zip(images, labels.tolist(), strict=True)


def _png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError("OpenCV failed to encode a CIFAR-10 image as PNG")
    return data.tobytes()
