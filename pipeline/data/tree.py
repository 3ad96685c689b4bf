"""A user's dataset seen as one tree of files, whatever holds it: a folder, a zip, or a tar (`.tar`, `.tar.gz`,
`.tgz`, any compression tarfile reads).

`open_tree(path, key)` gives a `Tree`: `names()` are the files' posix paths relative to the root, sorted, and
`read(name)` their bytes; `folders()` are the folders, empty ones too (a folder's subfolders, a zip's folder entries,
a tar's directory members, and the folders files are in); `left_out()` are the entries that are neither, with the
reason: a symbolic link that loops or leads nowhere, a file without read permission, a folder that cannot be listed,
a pipe, socket or device, a symbolic link inside a tar. A symbolic link in a folder is read as what it points at, a
file or a folder. Nothing is extracted. An archive entry that would land outside the archive's folder (`..`, an
absolute path, a tar link leading out) is refused, and a corrupt archive is an error naming it, as in
`pipeline.data.archive`.
"""

import errno
import os
import posixpath
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Protocol

from pipeline.core.errors import PipelineError
from pipeline.data.archive import link_target, refuse_unsafe

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
ZIP_MAGIC = b"PK\x03\x04"
ACCEPTED = "a folder, a .zip, or a .tar / .tar.gz / .tgz"
LOOP = "symbolic link loops"
BROKEN = "broken symbolic links"
UNREADABLE = "unreadable files"
UNLISTED = "folders that cannot be listed"
SPECIAL = "pipes, sockets and devices"
TAR_SYMLINK = "symbolic links inside a tar"


class Tree:
    """Files under one root, by posix relative path; a context manager that closes the archive behind it.

    A source whose files are always in one layout says so (`layout`, `classes` in label order); one that has a
    version records it (`revision`: a Hub commit, a hash of its files). A user's folder or archive has neither."""

    layout = ""
    classes: list[str] | None = None
    revision = ""

    def __init__(self, source: Path, key: str, shown: str = "") -> None:
        self.source = source
        self.key = key
        self.shown = shown or str(source)  # how errors name the tree: `train.zip inside dogs-vs-cats.zip`
        self._folders: set[str] = set()  # the folders an archive declares, or a folder's subfolders
        self._left_out: dict[str, str] = {}

    def names(self) -> list[str]:
        """Every file's posix path relative to the root, sorted."""
        raise NotImplementedError

    def folders(self) -> list[str]:
        """Every folder's posix path relative to the root (no trailing `/`), sorted: those the tree declares, empty
        or not, and those that they, files or left-out entries are in."""
        return sorted(self._folders | _parents([*self._folders, *self.names(), *self._left_out]))

    def left_out(self) -> dict[str, str]:
        """The entries that are neither files of `names()` nor folders, by path, with why."""
        return dict(sorted(self._left_out.items()))

    def entry(self, name: str) -> str:
        """How errors name the file or folder `name` of the tree (the tree itself for "")."""
        return f"{name} inside {self.shown}" if name else self.shown

    def read(self, name: str) -> bytes:
        """The bytes of the file `name` (one of `names()`)."""
        raise NotImplementedError

    def read_many(self, names: Iterable[str]) -> Iterator[tuple[str, bytes]]:
        """(name, bytes) of each of `names`, in whatever order reads the tree fastest."""
        return ((name, self.read(name)) for name in names)

    def close(self) -> None:
        """Release the archive behind the tree, if any."""

    def __enter__(self) -> "Tree":
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def _corrupt(self, exc: BaseException, name: str = "") -> PipelineError:
        where = f" at {name!r}" if name else ""
        return PipelineError(
            f"{self.key}: {self.shown} is a corrupt archive ({exc}{where}); download or pack it again"
        )


class FolderTree(Tree):
    """The files under a folder, at any depth. A symbolic link is read as what it points at, a folder's followed
    unless it leads back to a folder it is in (a loop)."""

    def __init__(self, source: Path, key: str, shown: str = "") -> None:
        super().__init__(source, key, shown)
        self._names = sorted(self._walk())

    def names(self) -> list[str]:
        """Every file's posix path relative to the folder, sorted."""
        return list(self._names)

    def entry(self, name: str) -> str:
        """The path of `name` (the folder's for "")."""
        return posixpath.join(self.shown, name) if name else self.shown

    def _walk(self) -> Iterator[str]:
        """The readable files under the folder, any depth; its subfolders and what is left out are noted on the way.
        Each folder is listed knowing the identities (device, inode) of the folders it is in, so that a link back to
        one of them is a loop, not an endless walk."""
        pending = [("", frozenset({_identity(os.stat(self.source))}))]
        while pending:
            folder, above = pending.pop()
            try:
                with os.scandir(self.source / folder) as listing:
                    entries = list(listing)
            except OSError as exc:
                if not folder:
                    raise PipelineError(
                        f"{self.key}: cannot list {self.source} ({exc.strerror}); check its permissions"
                    ) from None
                self._left_out[folder.rstrip("/")] = UNLISTED
                continue
            if folder:
                self._folders.add(folder.rstrip("/"))
            for item in entries:
                name, (kind, info) = f"{folder}{item.name}", _kind(item)
                if info is not None and _identity(info) in above:
                    self._left_out[name] = LOOP
                elif info is not None:
                    pending.append((f"{name}/", above | {_identity(info)}))
                elif kind:
                    self._left_out[name] = kind
                else:
                    yield name

    def read(self, name: str) -> bytes:
        """The bytes of the file `name` under the folder."""
        try:
            return (self.source / name).read_bytes()
        except OSError as exc:
            raise PipelineError(
                f"{self.key}: cannot read {self.source / name} ({exc.strerror}); check the file and its permissions"
            ) from None


class ZipTree(Tree):
    """The file entries of a zip (folder entries left out)."""

    def __init__(self, source: Path, key: str, shown: str = "") -> None:
        super().__init__(source, key, shown)
        try:
            self._zip = zipfile.ZipFile(source)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise self._corrupt(exc) from None
        with _closed_on_error(self._zip):
            refuse_unsafe(self._zip.namelist(), self.shown, key)
        infos = self._zip.infolist()
        self._names = sorted({info.filename for info in infos if not info.is_dir()})
        self._folders = {info.filename.strip("/") for info in infos if info.is_dir()} - {""}

    def names(self) -> list[str]:
        """Every file entry's name, sorted."""
        return list(self._names)

    def read(self, name: str) -> bytes:
        """The bytes of the entry `name`; a failed checksum or bad compressed data is an error naming the zip."""
        try:
            return self._zip.read(name)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
            raise self._corrupt(exc, name) from None

    def close(self) -> None:
        """Close the zip."""
        self._zip.close()


class TarTree(Tree):
    """The regular files (and hard links) of a tar archive, any compression."""

    def __init__(self, source: Path, key: str, shown: str = "") -> None:
        super().__init__(source, key, shown)
        try:
            self._tar = tarfile.open(source, mode="r:*")
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise self._corrupt(exc) from None
        with _closed_on_error(self._tar):
            try:
                members = self._tar.getmembers()
            except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
                raise self._corrupt(exc) from None
            for member in members:
                refuse_unsafe([member.name, link_target(member)], self.shown, key)
        files = [member for member in members if member.isfile() or member.islnk()]
        self._members = {_member_name(member): member for member in files}
        self._folders = {_member_name(member) for member in members if member.isdir()} - {"", "."}
        self._left_out = {
            _member_name(member): TAR_SYMLINK if member.issym() else SPECIAL
            for member in members
            if not (member.isfile() or member.islnk() or member.isdir())
        }

    def names(self) -> list[str]:
        """Every file's name, sorted (a leading `./` left out)."""
        return sorted(self._members)

    def read(self, name: str) -> bytes:
        """The bytes of the file `name`; damaged data is an error naming the archive."""
        try:
            return self._tar.extractfile(self._members[name]).read()  # type: ignore[union-attr]  # a file has a body
        except (tarfile.TarError, OSError, EOFError, zlib.error, KeyError) as exc:
            raise self._corrupt(exc, name) from None

    def read_many(self, names: Iterable[str]) -> Iterator[tuple[str, bytes]]:
        """The files in the archive's own order, so a compressed tar is decompressed once, not once per file."""
        wanted = set(names)
        for name, member in sorted(self._members.items(), key=lambda item: item[1].offset):
            if name in wanted:
                yield name, self.read(name)

    def close(self) -> None:
        """Close the tar."""
        self._tar.close()


def open_tree(path: Path, key: str, shown: str = "") -> Tree:
    """The tree of files at `path`: a folder, a zip, or a tar (by its name, else by its first bytes).

    `key` is the params key that names `path`, put at the head of every error; `shown` names the tree in errors
    (default: its path).
    """
    path = Path(path)
    if path.is_dir():
        return FolderTree(path, key, shown)
    if not path.is_file():
        raise PipelineError(f"{key}: {path} does not exist; point it at {ACCEPTED}")
    name = path.name.lower()
    if name.endswith(".zip") or _starts_like_zip(path):
        return ZipTree(path, key, shown)
    if name.endswith(TAR_SUFFIXES) or tarfile.is_tarfile(path):
        return TarTree(path, key, shown)
    raise PipelineError(f"{key}: {path} is neither a folder nor a zip or tar archive; point it at {ACCEPTED}")


def _kind(item: os.DirEntry) -> tuple[str, os.stat_result | None]:
    """A folder's entry as ("", None) for a readable file, ("", its stat) for a folder (a symbolic link's target in
    both cases), or (why it is left out, None)."""
    try:
        info = item.stat()  # follows a symbolic link
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return LOOP, None
        broken = item.is_symlink() and exc.errno in (errno.ENOENT, errno.ENOTDIR)
        return (BROKEN if broken else UNREADABLE), None
    if stat.S_ISDIR(info.st_mode):
        return "", info
    if not stat.S_ISREG(info.st_mode):
        return SPECIAL, None
    return ("" if os.access(item.path, os.R_OK) else UNREADABLE), None


def _identity(info: os.stat_result) -> tuple[int, int]:
    """A folder's device and inode: the same whichever path leads to it."""
    return info.st_dev, info.st_ino


def _parents(names: list[str]) -> set[str]:
    """Every folder above the posix paths `names`."""
    found: set[str] = set()
    for name in names:
        parts = name.split("/")[:-1]
        found.update("/".join(parts[:end]) for end in range(1, len(parts) + 1))
    return found


def _member_name(member: tarfile.TarInfo) -> str:
    """A tar member's path relative to the archive's root: no leading `./`, no trailing `/`."""
    return member.name.removeprefix("./").rstrip("/")


def _starts_like_zip(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(len(ZIP_MAGIC)) == ZIP_MAGIC


class _Closable(Protocol):
    def close(self) -> None: ...


@contextmanager
def _closed_on_error(archive: _Closable) -> Iterator[None]:
    """Close `archive` if the block raises (a refused or unreadable archive is not handed out open)."""
    try:
        yield
    except BaseException:
        archive.close()
        raise
