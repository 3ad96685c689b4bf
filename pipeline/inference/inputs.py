"""The images named on the command line, as `Item`s of bytes read one at a time (memory does not grow with their
number): image files, folders (searched at any depth) and zip or tar archives of them, read with
`pipeline.data.tree.open_tree`.

Inside a folder or archive only image files (`.jpg`, `.jpeg`, `.png`, `.bmp`, `.webp`) are taken; other files, hidden
files, `__MACOSX/` and what the tree leaves out (a broken or looping symbolic link, an unreadable file) are counted
as ignored. A file named on its own is always taken, whatever its name: whether it is a usable image is for
`pipeline.data.images.refusal` to say. Each item has a key, its absolute path (an archive's member: the archive's,
then the member's path inside it), by which `--labels` finds its class.
"""

import os
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from pipeline.core.errors import PipelineError
from pipeline.data.layouts import IMAGE_SUFFIXES, clutter
from pipeline.data.tree import TAR_SUFFIXES, Tree, open_tree

ARCHIVE_SUFFIXES = (".zip", *TAR_SUFFIXES)


@dataclass(frozen=True)
class Item:
    """One file to predict: its name as shown (the PATH given, then its path inside the folder or archive), its key
    (see the module), its bytes, and why it could not be read ("" when it was)."""

    name: str
    key: str
    data: bytes
    reason: str = ""


def image_key(root: Path, member: str = "") -> str:
    """The key of the file `member` inside the folder or archive `root` (of `root` itself when no member)."""
    base = os.path.normpath(os.path.abspath(root))
    return f"{base}/{member}" if member else base


def image_names(tree: Tree) -> tuple[list[str], int]:
    """The image files of a tree, sorted, and how many other entries it holds (hidden files and `__MACOSX/` too, and
    those the tree leaves out: broken links, unreadable files, ...)."""
    names = tree.names()
    images = [
        name for name in names
        if name.lower().endswith(IMAGE_SUFFIXES) and not clutter(name)
    ]
    return images, len(names) - len(images) + len(tree.left_out())


class Inputs:
    """The images of PATH arguments, opened (archives stay open until the `with` block ends). `len()` is how many
    items iterating gives; `ignored` how many files of folders and archives were not images."""

    def __init__(self, paths: Sequence[Path], key: str = "PATH") -> None:
        self._stack = ExitStack()
        self._sources: list[tuple[Path, Tree | None, list[str]]] = []
        self.ignored = 0
        try:
            for path in paths:
                self._add(path, key)
        except BaseException:
            self._stack.close()  # a later PATH refused: close the archives opened before it
            raise

    def _add(self, path: Path, key: str) -> None:
        if path.is_dir() or (path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)):
            tree = self._stack.enter_context(open_tree(path, key))
            names, others = image_names(tree)
            self._sources.append((path, tree, names))
            self.ignored += others
        elif path.is_file():
            self._sources.append((path, None, [""]))
        else:
            raise PipelineError(f"{key}: {path} does not exist; give image files, folders or archives of them")

    def __len__(self) -> int:
        return sum(len(names) for _, _, names in self._sources)

    def __iter__(self) -> Iterator[Item]:
        for path, tree, names in self._sources:
            if tree is None:
                yield _file_item(path)
                continue
            for name, data in tree.read_many(names):
                yield Item(f"{path}/{name}", image_key(path, name), data)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stack.close()


def _file_item(path: Path) -> Item:
    """An image file named on its own; an unreadable one has its reason."""
    try:
        return Item(str(path), image_key(path), path.read_bytes())
    except OSError as exc:
        return Item(str(path), image_key(path), b"", f"unreadable ({exc.strerror})")
