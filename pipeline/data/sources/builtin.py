"""Every image source as a tree of files (`pipeline.data.tree.Tree`), so that one reader (`pipeline.data.layouts`)
and one writer (`pipeline.data.raw.ingest`) serve them all.

`local` is the user's folder, zip or tar as it is; `hf` a Hugging Face Hub dataset's parquet shards
(`pipeline.data.sources.hf`). The built-in datasets' own sources become trees too: the
generated samples and CIFAR-10's pickled batches are written to a temporary zip of `<part>/<class>/<n>.png` (or
`train/<class>.<n>.jpg`), and a Kaggle dogs-vs-cats competition download is unwrapped to its `train.zip` or `train/`.
"""

import io
import os
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.config.datasets import CatsDogsData, Cifar10Data, DataSource
from pipeline.core.errors import PipelineError
from pipeline.data.archive import refuse_unsafe, write_zip
from pipeline.data.sources.cifar_batches import (
    BASE_FOLDER,
    MEMBERS,
    png_members,
    read_folder,
    read_tar,
)
from pipeline.data.sources.cifar_official import cache_dir, fetch_official
from pipeline.data.sources.cifar_sample import cifar10_sample
from pipeline.data.sources.hf import open_hub
from pipeline.data.sources.kaggle import fetch_competition
from pipeline.data.sources.sample import catsdogs_sample
from pipeline.data.tree import Tree, ZipTree, open_tree

KAGGLE_COMPETITION = "dogs-vs-cats"
INNER_ARCHIVE = "train.zip"


@contextmanager
def open_source(dataset: str, data: DataSource, seed: int, scratch: Path) -> Iterator[Tree]:
    """The tree of `dataset`'s raw images from its `data` source; temporary files go to `scratch` and are removed."""
    key = f"data.{dataset}"
    path, at_path, at_source = Path(data.path or ""), f"{key}.path", f"{key}.source"
    if data.source == "local" and isinstance(data, CatsDogsData):
        with _competition_train(path, at_path, scratch) as (train, shown), open_tree(train, at_path, shown) as tree:
            yield tree
    elif data.source == "local" and isinstance(data, Cifar10Data) and _is_pickled(path):
        with _members_tree(_pickled(path, at_path), at_path, str(path), scratch) as tree:
            yield tree
    elif data.source == "local":
        with open_tree(path, at_path) as tree:
            yield tree
    elif data.source == "hf":
        hub = {column: getattr(data, column) for column in ("revision", "image_column", "label_column")}
        with open_hub(data.path or "", key, **hub) as tree:
            yield tree
    elif data.source == "kaggle":
        download = fetch_competition(KAGGLE_COMPETITION)
        with _competition_train(download, at_source, scratch) as (train, shown), open_tree(train, at_source, shown) as tree:
            yield tree
    elif data.source == "torchvision":
        archive = fetch_official(cache_dir())
        with _members_tree(_pickled(archive, at_source), at_source, str(archive), scratch) as tree:
            yield tree
    elif isinstance(data, Cifar10Data):
        sample = io.BytesIO(cifar10_sample(data.sample_per_class, data.sample_test_per_class, seed))
        members = png_members(read_tar(sample, "the generated sample", at_source))
        with _members_tree(members, at_source, "the generated sample", scratch) as tree:
            yield tree
    elif isinstance(data, CatsDogsData):
        members = catsdogs_sample(data.sample_per_class, seed)
        with _members_tree(members, at_source, "the generated sample", scratch) as tree:
            yield tree
    else:
        raise PipelineError(f"{key}.source: {data.source!r} is not an image source")


@contextmanager
def _members_tree(members: Iterable[tuple[str, bytes]], key: str, shown: str, scratch: Path) -> Iterator[Tree]:
    """Members made in memory as a tree (named `shown` in errors): written to a temporary zip in `scratch`, removed
    after."""
    with _scratch_file(scratch, ".zip") as path:
        write_zip(path, members)
        with ZipTree(path, key, shown) as tree:
            yield tree


@contextmanager
def _scratch_file(scratch: Path, suffix: str) -> Iterator[Path]:
    scratch.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(suffix=suffix, dir=scratch, prefix=".source-")
    os.close(handle)
    try:
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


def _is_pickled(path: Path) -> bool:
    """True for CIFAR-10 in its official format: a tar holding the pickled batches, or a folder of them. Any
    other file or folder is read as the user's images in one of the layouts."""
    if path.is_dir():
        return _batches_folder(path) is not None
    if not path.is_file() or zipfile.is_zipfile(path) or not tarfile.is_tarfile(path):
        return False
    try:
        with tarfile.open(path) as tar:
            return any(name.rsplit("/", 1)[-1] in MEMBERS for name in tar.getnames())
    except (tarfile.TarError, EOFError, OSError, zlib.error):
        return True  # a damaged official archive: its reader names what is wrong


def _pickled(path: Path, key: str) -> Iterator[tuple[str, bytes]]:
    """CIFAR-10's pickled batches at `path` (the official archive or an extracted folder) as PNG members."""
    if path.is_file():
        with path.open("rb") as file:
            return png_members(read_tar(file, str(path), key))
    folder = _batches_folder(path)
    if folder is None:
        raise PipelineError(f"{key}: {path} holds no {BASE_FOLDER}/ batches")
    return png_members(read_folder(folder, key))


def _batches_folder(folder: Path) -> Path | None:
    """`folder` itself or its `cifar-10-batches-py/` when either holds the batches; None otherwise."""
    if (folder / BASE_FOLDER).is_dir():
        return folder / BASE_FOLDER
    if folder.name == BASE_FOLDER or any((folder / name).is_file() for name in MEMBERS):
        return folder
    return None


@contextmanager
def _competition_train(source: Path, key: str, scratch: Path) -> Iterator[tuple[Path, str]]:
    """The dogs-vs-cats training images inside a competition download, and how errors name them: `train.zip` in a
    folder or inside the competition zip (extracted to `scratch`), or an extracted `train/` folder; any other path
    as it is."""
    if source.is_dir() and (source / INNER_ARCHIVE).is_file():
        yield source / INNER_ARCHIVE, str(source / INNER_ARCHIVE)
    elif source.is_dir() and (source / "train").is_dir():
        yield source / "train", str(source / "train")
    elif inner := _inner_archive(source, key):
        shown = f"{INNER_ARCHIVE} inside {source}"
        with zipfile.ZipFile(source) as archive, _scratch_file(scratch, ".zip") as path:
            with archive.open(inner) as src, path.open("wb") as dst:
                shutil.copyfileobj(src, dst, length=1 << 20)
            if not zipfile.is_zipfile(path):
                raise PipelineError(f"{key}: {shown} is not a zip file; download it again")
            yield path, shown
    else:
        yield source, str(source)


def _inner_archive(source: Path, key: str) -> str:
    """The `train.zip` member of a competition zip that holds no images itself; "" otherwise (not a zip, too)."""
    if not (source.is_file() and zipfile.is_zipfile(source)):
        return ""
    try:
        with zipfile.ZipFile(source) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile:
        return ""  # read as a tree, which names what is wrong
    refuse_unsafe(names, str(source), key)
    if any(name.lower().endswith((".jpg", ".jpeg", ".png")) for name in names):
        return ""
    return next((name for name in names if name.rsplit("/", 1)[-1] == INNER_ARCHIVE), "")
