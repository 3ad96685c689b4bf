"""`python -m tests.helpers.paused OUTPUT MARKER MODULE ARGS...`: run `python -m MODULE ARGS` and stop it for good at
the moment its output OUTPUT (a path, as the stage names it) is written whole in its temporary copy but not yet
renamed into place, the last moment a kill can catch it; MARKER is created then, for the test that kills it.

Fault tests use it to kill a stage at a moment too short to catch by watching the disk (a split's manifests take
milliseconds to write)."""

import runpy
import sys
import time
from pathlib import Path

from pipeline.core import atomic

PAUSE_S = 600  # longer than any test waits: the test kills the process first


def pause_before_renaming(output: str, marker: Path) -> None:
    """Make every atomic write of `output` stop after its bytes are flushed, once `marker` is created."""
    flush, paused = atomic._flush, Path(output).absolute()

    def flush_then_pause(staged: Path) -> None:
        flush(staged)
        if (staged.parent.parent / staged.name).absolute() == paused:
            marker.touch()
            time.sleep(PAUSE_S)

    atomic._flush = flush_then_pause


if __name__ == "__main__":
    output, marker, module, *arguments = sys.argv[1:]
    pause_before_renaming(output, Path(marker))
    sys.argv = [module, *arguments]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
