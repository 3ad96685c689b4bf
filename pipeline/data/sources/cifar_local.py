"""A user's copy of CIFAR-10, whichever of the accepted formats it is in: the official archive or an extracted
batches folder (`pipeline.data.sources.cifar_batches`), or a class-folder tree
(`pipeline.data.sources.class_folders`)."""

from collections.abc import Iterator
from pathlib import Path

from pipeline.core.errors import PipelineError
from pipeline.data.sources.cifar_batches import (
    BASE_FOLDER,
    FORMATS,
    MEMBERS,
    Member,
    png_members,
    read_folder,
    read_tar,
)
from pipeline.data.sources.class_folders import class_folder_members


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


def _batches_folder(folder: Path) -> Path | None:
    """`folder` itself or its `cifar-10-batches-py/` when either holds the batches; None otherwise."""
    if (folder / BASE_FOLDER).is_dir():
        return folder / BASE_FOLDER
    if folder.name == BASE_FOLDER or any((folder / name).is_file() for name in MEMBERS):
        return folder
    return None
