"""Atomic outputs: a result appears whole under its final name, or not at all, even after a power cut: its bytes are
on the disk (fsync) before the rename that gives it its name, and the rename is (its folder's fsync) before the
write returns. Without the first, a file system may commit the rename before the data, and a power cut leaves an
empty or partial file under the final name, which DVC and the next stage would take as complete."""

import errno
import glob
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipeline.core.errors import PipelineError

DISK_FULL = {errno.ENOSPC, errno.EDQUOT}
TMP_SUFFIX = ".tmp"


class DiskFullError(PipelineError):
    """The device (or the user's quota) ran out of space while an output was being written."""

    def __init__(self, target: Path) -> None:
        super().__init__(
            f"{target}: no space left on the device while writing it; free some disk space and run the stage again "
            f"(the previous {target.name}, if there was one, is unchanged)"
        )


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary sibling of `target` to write to; it replaces `target` only if the block succeeds.

    Works for files and folders alike: every file and folder written is flushed to the disk before the rename, and
    `target`'s folder after it. A crash or an exception leaves the previous `target` (if any) intact; a full disk is
    a `DiskFullError` naming `target`, raised once the partial temporary copy is gone. A temporary copy that a
    killed run left (`.<name>.<random>.tmp`) is removed by the next write of the same target.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=TMP_SUFFIX, dir=target.parent))
    staged = tmp / target.name
    try:
        yield staged
        _flush(staged)
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(staged, target)
        _fsync(target.parent)
    except Exception as exc:
        if _disk_full(exc):
            raise DiskFullError(target) from None
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _flush(path: Path) -> None:
    """fsync `path`, and when it is a folder every file and folder under it."""
    if path.is_dir():
        for inner in sorted(path.rglob("*")):
            _fsync(inner)
    _fsync(path)


def _fsync(path: Path) -> None:
    """Wait until the file or folder `path` (its bytes, or its entries) is on the disk."""
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _remove_leftovers(target: Path) -> None:
    """Delete the temporary copies of `target` that runs killed mid-write left beside it (never another target's:
    the random part of the name has no dot, so `.a.zip.x.<random>.tmp`, a copy of `a.zip.x`, is not `a.zip`'s)."""
    prefix = f".{target.name}."
    for path in target.parent.glob(glob.escape(prefix) + "*" + TMP_SUFFIX):
        if "." not in path.name[len(prefix) : -len(TMP_SUFFIX)]:
            shutil.rmtree(path, ignore_errors=True)


def _disk_full(exc: BaseException | None) -> bool:
    """Whether an exception, or one it was raised from or while handling, says the disk is full. Writers wrap the
    OSError: torch raises a RuntimeError while handling it, a nested `atomic_path` a DiskFullError."""
    while exc is not None:
        if isinstance(exc, DiskFullError) or (isinstance(exc, OSError) and exc.errno in DISK_FULL):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def write_text(target: Path, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def write_json(target: Path, data: Any) -> None:
    """Write a JSON file atomically, keys in a stable order so equal data gives equal bytes."""
    write_text(target, json.dumps(data, indent=2, sort_keys=True) + "\n")


def save_torch(target: Path, payload: Any) -> None:
    """`torch.save` atomically, through a Python file so that a full disk surfaces as its OSError (torch's own
    writer, given a path, reports only a RuntimeError without the cause)."""
    import torch  # here, not at the top: most stages write no torch files

    with atomic_path(target) as tmp, tmp.open("wb") as handle:
        torch.save(payload, handle)
