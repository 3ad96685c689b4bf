"""Atomic outputs: a result appears whole under its final name, or not at all, even after a power cut: its bytes are
on the disk (fsync) before the rename that gives it its name, and the rename is (its folder's fsync) before the
write returns. Without the first, a file system may commit the rename before the data, and a power cut leaves an
empty or partial file under the final name, which DVC and the next stage would take as complete.

An output is written in a temporary copy beside it, `.<name>.<pid>_<random>.tmp`, named for the process writing it.
A process killed mid-write leaves its copy, and a stage that DVC restores from its run cache never runs its code, so
`remove_stale_copies` (called as every stage starts) removes the copies of processes that are gone. The rule is
safe beside a process that is still writing, whichever command it runs: a copy is stale when no process has its pid,
when that process is a zombie (killed, not yet reaped), or when it started after the copy last changed (the pid was
reused); a copy named without a pid was made before copies named their writer, by a process that is gone too. Pids
are this machine's: two machines (or containers) writing one workspace at the same time would see each other's
copies as stale, which the pipeline never does (under torchrun only one process writes).
"""

import errno
import glob
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipeline.core.errors import PipelineError

DISK_FULL = {errno.ENOSPC, errno.EDQUOT}
TMP_SUFFIX = ".tmp"
# A temporary copy's name: `.`, its target's name, `.`, the writer's pid and `_` (absent in copies made before they
# named their writer), tempfile's 8 random characters, `.tmp`.
COPY_NAME = re.compile(r"\.(?P<target>.+)\.(?:(?P<pid>\d+)_)?[a-z0-9_]{8}" + re.escape(TMP_SUFFIX))
# Process start times come from the boot time in whole seconds: a writer may look this much younger than it is.
CLOCK_SLACK_S = 2.0


class DiskFullError(PipelineError):
    """The device (or the user's quota) ran out of space while an output was being written."""

    def __init__(self, target: Path, command: str | None = None) -> None:
        again = f"`{command}`" if command else "the same command"
        super().__init__(
            f"{target}: no space left on the device while writing it; free some disk space and run {again} again "
            f"(the previous {target.name}, if there was one, is unchanged)"
        )
        self.target = target

    def naming_command(self, command: str) -> "DiskFullError":
        """The same error, its fix naming `command`."""
        return DiskFullError(self.target, command)


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary sibling of `target` to write to; it replaces `target` only if the block succeeds.

    Works for files and folders alike: every file and folder written is flushed to the disk before the rename, and
    `target`'s folder after it. A crash or an exception leaves the previous `target` (if any) intact; a full disk is
    a `DiskFullError` naming `target`, raised once the partial temporary copy is gone. A temporary copy of the same
    target that a killed run left (`.<name>.<pid>_<random>.tmp`) is removed first.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}_", suffix=TMP_SUFFIX, dir=target.parent))
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
    """Delete the stale temporary copies of `target` that runs killed mid-write left beside it (never another
    target's: `.a.zip.x.<random>.tmp` is a copy of `a.zip.x`, not of `a.zip`)."""
    for path in target.parent.glob(glob.escape(f".{target.name}.") + "*" + TMP_SUFFIX):
        match = COPY_NAME.fullmatch(path.name)
        if match is not None and match["target"] == target.name and is_stale_copy(path):
            _remove(path)


def remove_stale_copies(folder: Path) -> list[Path]:
    """Delete every stale temporary copy under `folder` (see the module's docstring for the rule); returns them."""
    removed = []
    for parent, folders, names in os.walk(folder):
        for name in [*folders, *names]:
            path = Path(parent) / name
            if COPY_NAME.fullmatch(name) and is_stale_copy(path):
                _remove(path)
                removed.append(path)
        folders[:] = [name for name in folders if not COPY_NAME.fullmatch(name)]  # a copy's insides are its own
    return sorted(removed)


def is_stale_copy(path: Path) -> bool:
    """Whether the temporary copy `path` was left by a process that no longer writes it."""
    match = COPY_NAME.fullmatch(path.name)
    if match is None:
        return False
    return match["pid"] is None or not _writes(int(match["pid"]), path)


def _writes(pid: int, copy: Path) -> bool:
    """Whether the process `pid` still runs and started before `copy` last changed (else the pid was reused)."""
    if pid == os.getpid():
        return True
    import psutil  # here: most writes find no copy to judge

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return process.create_time() <= copy.lstat().st_mtime + CLOCK_SLACK_S
    except (psutil.NoSuchProcess, FileNotFoundError):
        return False
    except psutil.AccessDenied:  # another user's process: the safe side
        return True


def _remove(path: Path) -> None:
    """Delete a temporary copy, a folder (as `atomic_path` makes them) or a file."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


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
