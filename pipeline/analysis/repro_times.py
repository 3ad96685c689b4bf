"""`pipeline bench-repro`: where the last `dvc repro` spent its time, stage by stage.

Each stage DVC ran left a line (`pipeline.core.stage_times`); the lines of the newest `dvc` process are that run.
A stage's time splits into DVC's own before it (from the previous stage's end, or from the `dvc` process's start for
the first: reading params, checking deps, writing `dvc.lock`, caching outputs), start-up (the interpreter and every
import, the stage's torch or scikit-learn included) and the work. The time after the last stage (DVC's last lock
write) is not seen.
"""

import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.core.errors import PipelineError
from pipeline.core.stage_times import LOG, StageTime, read_stage_times

TRAINING = "train"  # the stage group whose work is training
MEASURED_BY = "make repro in a fresh clone (timed), then pipeline bench-repro --out reports/repro_times.json --wall SECONDS"


@dataclass(frozen=True)
class StageSplit:
    """One stage's seconds: DVC before it, start-up and imports, work; `warm`: run by `pipeline warm`'s server."""

    stage: str
    dvc: float
    startup: float
    work: float
    warm: bool = False

    @property
    def total(self) -> float:
        return self.dvc + self.startup + self.work

    @property
    def group(self) -> str:
        return self.stage.split("@")[0]


def last_run(root: Path) -> list[StageSplit]:
    """The stages of the newest `dvc` run in `root`'s log, in the order they ran, each split into its parts."""
    times = read_stage_times(root)
    if not times:
        raise PipelineError(
            f"{root / LOG}: no stage times yet; run `dvc repro` (or `make repro`) first, then `pipeline bench-repro`"
        )
    newest = max(times, key=lambda line: line.runner_started).runner
    run = sorted((line for line in times if line.runner == newest), key=lambda line: line.created)
    return [_split(line, run[index - 1].ended if index else line.runner_started) for index, line in enumerate(run)]


def stage_times_table(splits: list[StageSplit]) -> str:
    """The per-stage table, the sums per stage group, and the share of the run that was training."""
    rows = [f"{'stage':<28}{'dvc s':>8}{'start s':>9}{'work s':>9}{'total s':>9}"]
    rows += [_row(split.stage + " *" * split.warm, split.dvc, split.startup, split.work) for split in splits]
    groups: dict[str, list[StageSplit]] = defaultdict(list)
    for split in splits:
        groups[split.group].append(split)
    rows += ["", "by stage group"]
    rows += [_row(f"{name} ({len(members)})", *_sums(members)) for name, members in groups.items()]
    dvc, startup, work = _sums(splits)
    total = dvc + startup + work
    training = sum(split.work for split in groups.get(TRAINING, []))
    rows += [
        _row(f"all ({len(splits)})", dvc, startup, work),
        "",
        f"{len(splits)} stages in {total:.1f} s: training {training:.1f} s ({_share(training, total)}), other work "
        f"{work - training:.1f} s ({_share(work - training, total)}), start-up and imports {startup:.1f} s "
        f"({_share(startup, total)}), DVC {dvc:.1f} s ({_share(dvc, total)})",
    ]
    if any(split.warm for split in splits):
        rows.append("* run by `pipeline warm`'s server, the libraries imported already (`make repro` does)")
    return "\n".join(rows)


def repro_record(splits: list[StageSplit], wall_s: float, machine: str) -> dict[str, Any]:
    """The run's seconds by stage group and in all, with the wall time of the whole `make repro` and the machine, as
    `reports/repro_times.json` keeps them for the docs' table (`pipeline dev docs`)."""
    groups: dict[str, list[StageSplit]] = defaultdict(list)
    for split in splits:
        groups[split.group].append(split)
    return {
        "command": MEASURED_BY,
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine,
        "wall_s": round(wall_s, 1),
        "groups": [{"stages": name, **_group_figures(members)} for name, members in groups.items()],
        "all": _group_figures(splits),
    }


def _group_figures(splits: list[StageSplit]) -> dict[str, Any]:
    dvc, startup, work = _sums(splits)
    figures = {"dvc": dvc, "startup": startup, "work": work, "total": dvc + startup + work}
    rounded = {key: round(value, 1) for key, value in figures.items()}
    return {"count": len(splits), "warm": sum(split.warm for split in splits), **rounded}


def _split(line: StageTime, previous_end: float) -> StageSplit:
    return StageSplit(
        stage=line.stage,
        dvc=max(line.created - previous_end, 0.0),
        startup=max(line.imported - line.created, 0.0),
        work=max(line.ended - line.imported, 0.0),
        warm=line.warm,
    )


def _sums(splits: list[StageSplit]) -> tuple[float, float, float]:
    return (sum(s.dvc for s in splits), sum(s.startup for s in splits), sum(s.work for s in splits))


def _row(name: str, dvc: float, startup: float, work: float) -> str:
    return f"{name:<28}{dvc:>8.1f}{startup:>9.1f}{work:>9.1f}{dvc + startup + work:>9.1f}"


def _share(part: float, total: float) -> str:
    return f"{100 * part / total:.0f}%" if total else "-"
