"""What killed stages leave in a workspace, removed when the next stage starts.

A stage killed mid-write leaves a temporary copy of its output (`pipeline.core.atomic`), and a killed training run
its checkpoint (`models/checkpoints/<model>.ckpt`, and `<model>.prev.ckpt`), which the run's next start resumes
from. But DVC may restore a stage from its run cache instead of running it, and then the stage's own code, which
would clean up, never runs. So every stage command starts by removing, under the workspace's data/, models/ and
metrics/, the temporary copies no running process writes (the rule is in `pipeline.core.atomic`), and the
checkpoints older than their model's file: a model file changed after the last checkpoint was written (saved by the
run, restored by DVC from its run cache, checked out) means that checkpoint's run is over or was replaced, and at
most a head start is lost. A checkpoint without a model file is of a run cut short, and stays for it to resume.
"""

import os
from pathlib import Path

from pipeline.core.atomic import remove_stale_copies
from pipeline.core.paths import Paths

OUTPUT_FOLDERS = ("data", "models", "metrics")  # where every stage writes
CHECKPOINT_SUFFIXES = (".prev.ckpt", ".ckpt")  # the latest checkpoint and the one before it, `<model><suffix>`


def remove_leftovers(paths: Paths) -> list[str]:
    """Remove the stale temporary copies and checkpoints under `paths.root`; returns what was removed and why, a
    phrase each."""
    copies = [path for folder in OUTPUT_FOLDERS for path in remove_stale_copies(paths.root / folder)]
    removed = [f"{path} (the temporary copy of a killed write)" for path in copies]
    for checkpoint, model_file in stale_checkpoints(paths):
        checkpoint.unlink(missing_ok=True)
        removed.append(f"{checkpoint} (older than {model_file}: its run is over)")
    return removed


def stale_checkpoints(paths: Paths) -> list[tuple[Path, Path]]:
    """Each checkpoint whose model file changed (st_ctime, which a copy, a hard link or a symlink made by DVC all
    set) since the checkpoint was written, with that model file."""
    folder = paths.checkpoint("model").parent
    stale = []
    for checkpoint in sorted(folder.glob("*.ckpt")) if folder.is_dir() else []:
        model_file = paths.model_file(_model_of(checkpoint))
        try:
            if os.lstat(model_file).st_ctime >= checkpoint.stat().st_mtime:
                stale.append((checkpoint, model_file))
        except FileNotFoundError:  # no model file yet: the run is cut short, to be resumed
            continue
    return stale


def _model_of(checkpoint: Path) -> str:
    """The model a checkpoint file belongs to, from its name."""
    suffix = next(suffix for suffix in CHECKPOINT_SUFFIXES if checkpoint.name.endswith(suffix))
    return checkpoint.name.removesuffix(suffix)
