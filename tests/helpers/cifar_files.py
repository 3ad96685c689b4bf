"""Copies of CIFAR-10 for the source tests: tiny official batches of random pixels, pickled as Python 2 did, in an
extracted folder or a tar.gz, and readers of the raw archive that `download` writes."""

import io
import struct
import tarfile
import zipfile
from pathlib import Path

import cv2
import numpy as np

from pipeline.config.datasets import Cifar10Data
from pipeline.core.paths import Paths
from pipeline.data.sources.cifar_batches import (
    BASE_FOLDER,
    CIFAR10_CLASSES,
    MEMBERS,
    PARTS,
)
from pipeline.data.sources.cifar_official import FILENAME

BATCH_SIZES = dict(zip(MEMBERS, (3, 4, 2, 3, 4, 11)))


def random_batches(batch_sizes: dict[str, int] = BATCH_SIZES) -> dict[str, dict[bytes, object]]:
    """Tiny official batches (of `batch_sizes` images each) of random pixels and labels, with the keys the real
    files hold; each part (the five training batches, the test batch) has every class, as the real ones do."""
    rng = np.random.default_rng(5)
    found: dict[str, dict[bytes, object]] = {}
    for names in PARTS.values():
        sizes = [batch_sizes[name] for name in names]
        every = np.concatenate([np.arange(len(CIFAR10_CLASSES)), rng.integers(0, len(CIFAR10_CLASSES), sum(sizes) - 10)])
        for name, labels in zip(names, np.split(rng.permutation(every), np.cumsum(sizes)[:-1]), strict=True):
            found[name] = _batch(name, [int(label) for label in labels], rng)
    found["batches.meta"] = {b"label_names": [name.encode() for name in CIFAR10_CLASSES], b"num_vis": 3072}
    return found


def _batch(name: str, labels: list[int], rng: np.random.Generator) -> dict[bytes, object]:
    size = len(labels)
    return {
        b"batch_label": name.encode(),
        b"labels": labels,
        b"data": rng.integers(0, 256, (size, 3072), dtype=np.uint8),
        b"filenames": [f"img_{n}.png".encode() for n in range(size)],
    }


def expected_images(batches: dict[str, dict[bytes, object]]) -> dict[str, np.ndarray]:
    """The RGB image each member of the raw archive must decode to, by member name."""
    images = {}
    for part, names in PARTS.items():
        rows = np.concatenate([batches[name][b"data"] for name in names])
        labels = [label for name in names for label in batches[name][b"labels"]]
        for index, (row, label) in enumerate(zip(rows, labels, strict=True)):
            images[f"{part}/{CIFAR10_CLASSES[label]}/{index:05d}.png"] = row.reshape(3, 32, 32).transpose(1, 2, 0)
    return images


def py2_pickle(value: object) -> bytes:
    """`value` pickled as Python 2's cPickle wrote the official batches: protocol 2, str, numpy.core arrays."""
    if isinstance(value, dict):
        return b"}(" + b"".join(py2_pickle(k) + py2_pickle(v) for k, v in value.items()) + b"u"
    if isinstance(value, list):
        return b"](" + b"".join(py2_pickle(item) for item in value) + b"e"
    if isinstance(value, bytes):
        return b"U" + bytes([len(value)]) + value if len(value) < 256 else b"T" + struct.pack("<i", len(value)) + value
    if isinstance(value, int):
        return b"J" + struct.pack("<i", value)
    assert isinstance(value, np.ndarray) and value.dtype == np.uint8 and value.ndim == 2
    dtype = b"cnumpy\ndtype\n" + py2_pickle(b"u1") + py2_pickle(0) + py2_pickle(1) + b"\x87R(" + py2_pickle(3)
    dtype += py2_pickle(b"|") + b"NNN" + py2_pickle(-1) + py2_pickle(-1) + py2_pickle(0) + b"tb"
    shape = b"".join(py2_pickle(side) for side in value.shape) + b"\x86"
    array = b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n" + py2_pickle(0) + b"\x85" + py2_pickle(b"b")
    return array + b"\x87R(" + py2_pickle(1) + shape + dtype + b"\x89" + py2_pickle(value.tobytes()) + b"tb"


def py2_file(value: object) -> bytes:
    """`value` as a whole pickle file in the official batches' format."""
    return b"\x80\x02" + py2_pickle(value) + b"."


def write(path: Path, data: bytes) -> Path:
    """Write `data` to `path`, creating its folders; returns `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def batches_folder(root: Path, batches: dict, skip: tuple[str, ...] = (), **replace: bytes) -> Path:
    """An extracted `cifar-10-batches-py/` folder in `root` holding `batches` less those in `skip`, with the file
    bytes of any batch named in `replace` replaced."""
    folder = root / BASE_FOLDER
    for name, batch in batches.items():
        if name not in skip:
            write(folder / name, replace.get(name, py2_file(batch)))
    return folder


def tar_gz(root: Path, folder: Path, *extra: tarfile.TarInfo) -> Path:
    """`folder` as the official archive's batches folder, then the `extra` entries (bodies of their size)."""
    archive = root / FILENAME
    root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=BASE_FOLDER)
        for entry in extra:
            tar.addfile(entry, io.BytesIO(b"x" * entry.size))
    return archive


def local(path: Path) -> Cifar10Data:
    """CIFAR-10 data params that take the user's copy at `path`."""
    return Cifar10Data(source="local", path=str(path))


def decoded(paths: Paths) -> dict[str, np.ndarray]:
    """The raw archive's images, decoded to RGB, by member name."""
    with zipfile.ZipFile(paths.raw_archive("cifar10")) as archive:
        return {
            name: cv2.imdecode(np.frombuffer(archive.read(name), np.uint8), cv2.IMREAD_UNCHANGED)[..., ::-1]
            for name in archive.namelist()
        }


def assert_nothing_written(paths: Paths) -> None:
    """The raw CIFAR-10 folder is missing or empty."""
    raw = paths.raw_dir("cifar10")
    assert not raw.exists() or list(raw.iterdir()) == []


def official_tar(root: Path, batches: dict) -> Path:
    """`batches` as the official archive in `root`."""
    return tar_gz(root, batches_folder(root / "build", batches))

