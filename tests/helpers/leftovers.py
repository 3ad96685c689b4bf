"""What killed stages leave in a workspace, made on purpose: temporary copies of outputs, named for the process that
wrote them, and checkpoints, older or newer than their model's file."""

import os
import subprocess
import time
from pathlib import Path

from pipeline.core.paths import Paths

RANDOM = "k1ll3d_x"  # tempfile's 8 random characters in a copy's name


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def copy_left(target: Path, pid: int | None) -> Path:
    """A half-written temporary copy of `target` (a folder holding half a file), as process `pid` names it (None:
    as copies were named before they named their writer)."""
    owner = "" if pid is None else f"{pid}_"
    copy = target.parent / f".{target.name}.{owner}{RANDOM}.tmp"
    (copy / target.name).mkdir(parents=True)
    (copy / target.name / "inputs.npy").write_bytes(b"half an array")
    return copy


def checkpoint_left(paths: Paths, model: str, before_its_model_file: bool = True) -> Path:
    """A checkpoint of `model` last written a minute before its model file was made here (or, not
    `before_its_model_file`, a minute after: a run in progress beside an older model file)."""
    checkpoint, model_file = paths.checkpoint(model), paths.model_file(model)
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.write_bytes(b"a checkpoint")
    model_file.write_bytes(b"a model")  # its st_ctime is now, whatever its mtime says
    written = time.time() + (-60 if before_its_model_file else 60)
    os.utime(checkpoint, (written, written))
    return checkpoint
