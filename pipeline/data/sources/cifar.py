"""CIFAR-10 readers: the official python-pickle batches (tar.gz or extracted folder), class-folder trees, and the
official archive fetched with torchvision's download utilities.

Every reader yields raw-archive members `<part>/<class>/<name>` (see `pipeline.data.archive`): pickled images become
lossless PNGs numbered by their index in the official part (`train/airplane/00017.png`); class-folder images keep
their original bytes. The embedded sample (`pipeline.data.sources.cifar_sample`) is a pickle archive too, so it goes through
the same reader as the real one.
"""

import contextlib
import io
import itertools
import os
import pickle
import posixpath
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from http.client import HTTPException
from pathlib import Path
from typing import BinaryIO, TypeVar

import cv2
import numpy as np
from tqdm import tqdm

from pipeline.core.errors import PipelineError
from pipeline.data.archive import refuse_unsafe
from pipeline.data.specs import CIFAR10, CIFAR10_CLASSES

# The official archive, as torchvision's `CIFAR10` names it (a test keeps these equal to torchvision's). Copied so
# that importing this module does not import torchvision, which takes seconds.
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
FILENAME = "cifar-10-python.tar.gz"
TGZ_MD5 = "c58f30108f718f92721af3b95e74349a"
CACHE_ENV = "PIPELINE_CACHE_DIR"
DEFAULT_CACHE = "~/.cache/image-pipeline/cifar10"
DOWNLOAD_ATTEMPTS = 2  # a download whose md5 differs is fetched once more before giving up
BY_HAND = f"download {FILENAME} by hand and set data.cifar10.source: local with data.cifar10.path pointing at it"

BASE_FOLDER = "cifar-10-batches-py"
PARTS = {"train": tuple(f"data_batch_{n}" for n in range(1, 6)), "test": ("test_batch",)}
META = "batches.meta"
MEMBERS = (*PARTS["train"], *PARTS["test"], META)
SIDE = 32
CLASS_NAMES = ", ".join(CIFAR10_CLASSES)
FORMATS = f"{FILENAME}, an extracted {BASE_FOLDER}/ folder, or a class-folder tree train/<class>/ + test/<class>/"

Batch = tuple[np.ndarray, np.ndarray]
Batches = dict[str, Batch]
Member = tuple[str, bytes]
T = TypeVar("T")


def cache_dir() -> Path:
    """Where the official archive is kept between runs: $PIPELINE_CACHE_DIR, else ~/.cache/image-pipeline/cifar10."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser()


def fetch_official(cache: Path) -> Path:
    """The official archive in `cache`, downloaded there with torchvision unless a copy with the right md5 is there.

    The download goes to a private folder and is moved into place only once its md5 matches, so parallel runs
    (queued experiments) sharing the cache never see or leave a partial archive. A download whose md5 differs is
    discarded and fetched once more (a transfer can be corrupted); a second mismatch is an error.
    """
    from torchvision.datasets.utils import check_integrity, download_url

    key, archive = "data.cifar10.source", cache / FILENAME
    if check_integrity(str(archive), TGZ_MD5):
        return archive
    try:
        cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".download.", dir=cache))
    except OSError as exc:
        raise PipelineError(f"{key}: cannot create the cache folder {cache} ({exc}); set {CACHE_ENV}") from None
    try:
        for _ in range(DOWNLOAD_ATTEMPTS):
            with contextlib.suppress(RuntimeError):  # torchvision's "File not found or corrupted.": the md5 differs
                download_url(URL, str(staging), FILENAME, TGZ_MD5)
                break
        else:
            raise PipelineError(
                f"{key}: the file downloaded from {URL} does not match the official md5 {TGZ_MD5} in "
                f"{DOWNLOAD_ATTEMPTS} attempts; the downloads were discarded. Check for a proxy that alters "
                f"downloads, or {BY_HAND}"
            )
        os.replace(staging / FILENAME, archive)
    except (OSError, HTTPException, RecursionError) as exc:
        raise PipelineError(
            f"{key}: could not download {URL} ({exc.__class__.__name__}: {exc}); check the network, or {BY_HAND}"
        ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return archive


def local_members(path: Path, key: str) -> Iterator[Member]:
    """The raw-archive members of a copy of CIFAR-10 at `path`, whichever of the accepted formats it is in."""
    if path.is_file():
        with path.open("rb") as file:
            return png_members(read_tar(file, str(path), key))
    if not path.is_dir():
        raise PipelineError(f"{key}: {path} does not exist; point it at {FORMATS}")
    batches = _batches_folder(path)
    if batches:
        return png_members(read_folder(batches, key))
    if (path / "train").is_dir() or (path / "test").is_dir():
        return class_folder_members(path, key)
    raise PipelineError(f"{key}: {path} is in an unknown format; point it at {FORMATS}")


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
                refuse_unsafe([member.name, _link_target(member)], source, key)
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
    return _progress(_png_members(batches), total=sum(len(labels) for _, labels in batches.values()))


def class_folder_members(root: Path, key: str) -> Iterator[Member]:
    """The images of a `train/<class>/*` + `test/<class>/*` tree, original bytes, as `<part>/<class>/<file>`.

    Files are named by their stem and lower-cased extension (PNG or JPEG, any size), in sorted order.
    """
    files = [item for part in PARTS for item in _part_files(root, part, key)]
    return _progress(((name, path.read_bytes()) for name, path in files), total=len(files))


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


def _link_target(member: tarfile.TarInfo) -> str:
    """What a tar link points at, relative to the archive's root (a symbolic link's target is relative to its own
    folder, a hard link's to the root); "" for other entries."""
    if member.issym():
        return posixpath.normpath(posixpath.join(posixpath.dirname(member.name), member.linkname))
    return member.linkname if member.islnk() else ""


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


def _batches_folder(folder: Path) -> Path | None:
    """`folder` itself or its `cifar-10-batches-py/` when either holds the batches; None otherwise."""
    if (folder / BASE_FOLDER).is_dir():
        return folder / BASE_FOLDER
    if folder.name == BASE_FOLDER or any((folder / name).is_file() for name in MEMBERS):
        return folder
    return None


def _part_files(root: Path, part: str, key: str) -> list[tuple[str, Path]]:
    """(member name, file) of one part's images, sorted; the part must hold only CIFAR-10 class folders (any
    case: `Airplane/` is `airplane`)."""
    folder = root / part
    if not folder.is_dir():
        raise PipelineError(
            f"{key}: {root} has no {part}/ folder; a class-folder tree needs both train/<class>/ and test/<class>/"
        )
    classes = [path for path in sorted(folder.iterdir()) if path.is_dir() and not _hidden(path)]
    unknown = [path.name for path in classes if path.name.lower() not in CIFAR10_CLASSES]
    if unknown:
        raise PipelineError(
            f"{key}: {folder} has folders that are not CIFAR-10 classes ({', '.join(unknown)}); rename them to "
            f"the classes' names: {CLASS_NAMES}"
        )
    images: dict[str, Path] = {}
    for cls in classes:
        for path in sorted(cls.iterdir()):
            name = f"{part}/{cls.name.lower()}/{path.stem}{path.suffix.lower()}"
            if path.is_file() and not _hidden(path) and CIFAR10.class_of(name):
                images.setdefault(name, path)
    if not images:
        raise PipelineError(f"{key}: {folder} holds no PNG or JPEG images in class folders named {CLASS_NAMES}")
    return sorted(images.items())


def _hidden(path: Path) -> bool:
    """Dot files and macOS metadata (`.DS_Store`, `._x.png`, `__MACOSX`), which are never images."""
    return path.name.startswith((".", "__MACOSX"))


def _progress(items: Iterable[T], total: int) -> Iterator[T]:
    return iter(tqdm(items, total=total, desc="cifar10", unit="img", disable=None, leave=False))
