import builtins
import io
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.core.atomic import (
    DiskFullError,
    atomic_path,
    save_torch,
    write_json,
    write_text,
)
from pipeline.core.errors import PipelineError
from pipeline.data.archive import write_zip

DEV_FULL = Path("/dev/full")


def fill_disk(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    """From now on every file opened for writing under `root` is created, but its bytes go to /dev/full, where the
    kernel answers each write with ENOSPC, as a full disk does (buffered writers fail when they flush or close)."""
    if not DEV_FULL.exists():
        pytest.skip("needs /dev/full")
    real_open = io.open

    def open_(file, mode="r", *args, **kwargs):
        writing = isinstance(file, str | os.PathLike) and set(mode) & set("wax+")
        if writing and Path(file).resolve().is_relative_to(root.resolve()):
            Path(file).touch()
            return real_open(DEV_FULL, mode.replace("x", "w"), *args, **kwargs)
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(io, "open", open_)
    monkeypatch.setattr(builtins, "open", open_)


def _arrays_folder(target: Path) -> None:
    with atomic_path(target) as out:
        out.mkdir()
        np.save(out / "inputs.npy", np.zeros((64, 64), np.uint8))


WRITERS: dict[str, Callable[[Path], None]] = {
    "text": lambda target: write_text(target, "new\n" * 10_000),
    "json": lambda target: write_json(target, {"new": list(range(10_000))}),
    "numpy-folder": _arrays_folder,
    "torch": lambda target: save_torch(target, {"weights": torch.zeros(10_000)}),
    "zip": lambda target: write_zip(target, [("train/cat.0.jpg", b"\xff" * 10_000)]),
}


def previous_output(target: Path, folder: bool) -> dict[str, bytes]:
    """Write a good output at `target` (a folder holding one file, or a file); returns its files' bytes."""
    if folder:
        target.mkdir(parents=True)
        (target / "inputs.npy").write_bytes(b"old arrays")
    else:
        target.parent.mkdir(parents=True)
        target.write_bytes(b"old output")
    return files_under(target.parent)


def files_under(root: Path) -> dict[str, bytes]:
    """Every file below `root`, hidden temporary ones included, by relative path."""
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


@pytest.mark.parametrize("writer", WRITERS.values(), ids=WRITERS.keys())
def test_a_full_disk_is_an_error_naming_the_output_and_keeps_the_previous_one(tmp_path, monkeypatch, writer):
    target = tmp_path / "out" / "result"
    before = previous_output(target, folder=writer is _arrays_folder)
    fill_disk(monkeypatch, tmp_path)

    with pytest.raises(DiskFullError) as error:
        writer(target)

    assert isinstance(error.value, PipelineError)
    assert str(error.value).startswith(f"{target}: no space left on the device")
    assert "free some disk space" in str(error.value)
    assert files_under(target.parent) == before
    assert [path.name for path in target.parent.iterdir()] == ["result"]


def test_a_full_disk_while_writing_a_new_output_leaves_nothing(tmp_path, monkeypatch):
    fill_disk(monkeypatch, tmp_path)

    with pytest.raises(DiskFullError):
        write_text(tmp_path / "out" / "result.txt", "new")

    assert list((tmp_path / "out").iterdir()) == []


def test_a_failed_block_keeps_the_previous_output_and_its_own_error(tmp_path):
    target = tmp_path / "result.txt"
    target.write_text("old")

    with pytest.raises(KeyError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise KeyError("bug")

    assert target.read_text() == "old"
    assert [path.name for path in tmp_path.iterdir()] == ["result.txt"]


def test_a_finished_block_replaces_a_previous_folder(tmp_path):
    target = tmp_path / "arrays"
    previous_output(target, folder=True)

    _arrays_folder(target)

    assert [path.name for path in target.iterdir()] == ["inputs.npy"]
    assert np.load(target / "inputs.npy").shape == (64, 64)


def test_a_write_removes_the_temporary_copies_a_killed_run_left_of_the_same_target(tmp_path):
    own = tmp_path / ".result.txt.k1ll3d_x.tmp"
    others = tmp_path / ".result.txt.bak.k1ll3d_x.tmp"
    for leftover in (own, others):
        leftover.mkdir()
        (leftover / "result.txt").write_text("half")

    write_text(tmp_path / "result.txt", "whole")

    assert sorted(path.name for path in tmp_path.iterdir()) == [others.name, "result.txt"]


def disk_events(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """From now on, every fsync and rename, in order, as (what, inode): the file or folder synced, the one renamed
    (a rename keeps its inode, so the final output's inode names what was synced before it had its name)."""
    events: list[tuple[str, int]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.fstat(fd).st_ino))
        real_fsync(fd)

    def replace(source, destination) -> None:
        events.append(("rename", os.stat(source).st_ino))
        real_replace(source, destination)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return events


@pytest.mark.parametrize("writer", WRITERS.values(), ids=WRITERS.keys())
def test_an_output_is_on_the_disk_before_its_rename_and_the_rename_before_the_write_returns(
    tmp_path, monkeypatch, writer
):
    target = tmp_path / "out" / "result"
    events = disk_events(monkeypatch)

    writer(target)

    renamed = events.index(("rename", target.stat().st_ino))
    written = [target, *target.rglob("*")] if target.is_dir() else [target]
    assert {("fsync", path.stat().st_ino) for path in written} <= set(events[:renamed])
    assert ("fsync", target.parent.stat().st_ino) in events[renamed + 1 :]
