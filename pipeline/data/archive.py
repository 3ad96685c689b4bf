"""Zip archives as the pipeline writes and reads them: byte-stable writes, opening with errors that name the file,
and refusing entries that would point outside the archive. `pipeline.data.raw` says what the raw archive holds."""

import posixpath
import tarfile
import zipfile
from collections.abc import Iterable
from pathlib import Path, PureWindowsPath

from pipeline.core.atomic import atomic_path
from pipeline.core.errors import PipelineError

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


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
        raise PipelineError(
            f"{path}: raw archive not found; run the download stage first: `dvc repro download@{path.parent.name}`"
        )
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise PipelineError(
            f"{path}: not a readable zip ({exc}); delete it and run the download stage again: "
            f"`dvc repro download@{path.parent.name}`"
        ) from None


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
