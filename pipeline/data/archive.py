"""The raw layout every image source ends in: one zip of encoded images named as the dataset's spec says.
(Table datasets keep one CSV instead: see `pipeline.data.tables`; `raw_samples` lists either kind.)

dogs-vs-cats keeps Kaggle's `train/<class>.<n>.jpg`; CIFAR-10 is stored as lossless PNGs named
`<part>/<class>/<n>.png`, part being the official `train` or `test` set.

Keeping the images in one archive (not 25,000 loose files) keeps DVC fast; stages read members directly.
"""

import posixpath
import tarfile
import zipfile
from collections.abc import Iterable
from pathlib import Path, PureWindowsPath

import pandas as pd

from pipeline.core.atomic import atomic_path
from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths
from pipeline.data.specs import DatasetSpec
from pipeline.data.tables import list_rows

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
IGNORED_PREFIXES = ("__MACOSX/",)


def write_zip(target: Path, members: Iterable[tuple[str, bytes]]) -> int:
    """Write an uncompressed zip atomically, with fixed timestamps so equal members give equal bytes."""
    count = 0
    with atomic_path(target) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members:
            info = zipfile.ZipInfo(name, ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
            count += 1
    return count


def open_archive(path: Path) -> zipfile.ZipFile:
    """Open a raw archive, turning a missing or corrupt file into an error that names it."""
    if not path.is_file():
        raise PipelineError(f"{path}: raw archive not found; run the download stage first")
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise PipelineError(f"{path}: not a readable zip ({exc}); delete it and download again") from None


def refuse_unsafe(names: Iterable[str], source: str, key: str) -> None:
    """Stop at the first archive entry that would land outside the folder the archive is extracted to (an absolute
    path, a drive, or a `..` part, with either slash), naming the archive and the entry. Stages read entries
    without extracting them, but such an entry means the archive is not what it claims to be."""
    for name in names:
        path = PureWindowsPath(name)  # parses `/` and `\\` alike, and drives
        if path.drive or path.root or ".." in path.parts:
            raise PipelineError(
                f"{key}: {source} holds the entry {name!r}, which points outside the archive's folder; refusing the "
                "archive: get it again from its official source"
            )


def link_target(member: tarfile.TarInfo) -> str:
    """What a tar link points at, relative to the archive's root (a symbolic link's target is relative to its own
    folder, a hard link's to the root); "" for other entries."""
    if member.issym():
        return posixpath.normpath(posixpath.join(posixpath.dirname(member.name), member.linkname))
    return member.linkname if member.islnk() else ""


def list_images(path: Path, spec: DatasetSpec) -> pd.DataFrame:
    """The dataset's images in a raw archive, one row per member (`path`, `class`, `part`), in a stable order.

    Members that are not images of the dataset (stray files, `__MACOSX/` entries, other names) are left out.
    """
    with open_archive(path) as archive:
        names = [name for name in archive.namelist() if not name.startswith(IGNORED_PREFIXES)]
    rows = [(name, spec.class_of(name), spec.part_of(name), spec.number_of(name)) for name in names]
    frame = pd.DataFrame([row for row in rows if row[1] is not None], columns=["path", "class", "part", "number"])
    frame = frame.sort_values(["part", "class", "number", "path"], kind="stable").drop_duplicates("path")
    return frame.drop(columns="number").reset_index(drop=True)


def raw_file(paths: Paths, spec: DatasetSpec) -> Path:
    """Where the dataset's raw samples live: its zip of images, or its table."""
    return paths.raw_table(spec.name) if spec.kind == "table" else paths.raw_archive(spec.name)


def raw_samples(paths: Paths, spec: DatasetSpec) -> tuple[Path, pd.DataFrame]:
    """The dataset's raw file (archive or table) and its samples, one row each (`path`, `class`, `part`)."""
    source = raw_file(paths, spec)
    return source, (list_rows if spec.kind == "table" else list_images)(source, spec)
