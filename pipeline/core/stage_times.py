"""Where a stage's time goes, recorded by the stage itself.

A stage process that DVC runs (it sets `DVC_STAGE` and `DVC_ROOT`) appends one line to `LOG` under the
repository: when the process was created, when its imports were done, when its work ended, which `dvc` process ran
it, and how much of the work was `torch.compile`'s (`train.compile`). `pipeline bench-repro` (`pipeline.analysis.repro_times`) reads the lines of the last `dvc repro`
and splits each stage into DVC's own time before it, start-up and imports, and the work. The log is not a DVC
output (no stage depends on it) and a failure to write it never fails a stage.
"""

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

LOG = Path(".dvc") / "tmp" / "stage_times.jsonl"
# Set in a stage run by `pipeline warm`'s server (`pipeline.cli.warm_server`): the pid of the process DVC started,
# which handed its command to this one; its creation is the stage's start.
STAGE_PROCESS_ENV = "PIPELINE_STAGE_PROCESS"


@dataclass(frozen=True)
class StageTime:
    """One stage run: `created`, `imported` and `ended` are Unix times; `runner` names the `dvc` process (its pid
    and start time) so that the lines of one `dvc repro` can be told from another's; `warm`: `pipeline warm`'s
    server ran the command, in a process with the heavy libraries imported already."""

    stage: str
    created: float
    imported: float
    ended: float
    runner: str
    runner_started: float
    warm: bool = False
    compile_s: float = 0.0


_compile_seconds = [0.0]  # this process's `torch.compile` time, noted by the training loop


def note_compile(seconds: float) -> None:
    """Add `seconds` of compiling (`train.compile`) to what this process's line records."""
    _compile_seconds[0] += seconds


def record_stage(imported: float) -> None:
    """Append this process's line to the log of the repository DVC runs it in (nothing outside a DVC run)."""
    stage, root = os.environ.get("DVC_STAGE"), os.environ.get("DVC_ROOT")
    if not stage or not root or "TORCHELASTIC_RUN_ID" in os.environ:  # torchrun's workers: their launcher records
        return
    try:
        process = psutil.Process(int(os.environ.get(STAGE_PROCESS_ENV, os.getpid())))
        runner = _runner(process)
        line = StageTime(
            stage=stage,
            created=process_created(process),
            imported=imported,
            ended=time.time(),
            runner=f"{runner.pid}:{runner.create_time():.3f}",
            runner_started=runner.create_time(),
            warm=STAGE_PROCESS_ENV in os.environ,
            compile_s=_compile_seconds[0],
        )
        log = Path(root) / LOG
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as out:  # one short line: appends from one stage at a time stay whole
            out.write(json.dumps(asdict(line)) + "\n")
    except (OSError, ValueError, psutil.Error):
        return


def process_created(process: psutil.Process) -> float:
    """When `process` was created, as a Unix time to the clock tick (10 ms).

    psutil's `create_time` adds the process's start (clock ticks since boot) to the boot time, which Linux gives in
    whole seconds: up to a second early, which would move that second from DVC's share to start-up's. Here the boot
    time is now less the seconds since boot (`/proc/uptime`, to the hundredth). Elsewhere, psutil's figure.
    """
    try:
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        ticks = int(Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return process.create_time()
    return time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK")


def read_stage_times(root: Path) -> list[StageTime]:
    """Every line of the repository's log, oldest first (lines that do not parse are skipped)."""
    path = root / LOG
    if not path.is_file():
        return []
    times = []
    for text in path.read_text().splitlines():
        try:
            times.append(StageTime(**json.loads(text)))
        except (ValueError, TypeError):
            continue
    return times


def _runner(process: psutil.Process) -> psutil.Process:
    """The `dvc` process above this one (DVC runs a stage's command through a shell), else the parent."""
    parents = process.parents()
    for parent in parents:
        try:
            if any("dvc" in Path(part).name for part in parent.cmdline()[:3]):
                return parent
        except psutil.Error:
            continue
    return parents[0] if parents else process
