"""Command `dev gpu-table`: the one table of `scripts/gpu_check.sh`, from what its parts left in its scratch folder.

The script runs each part (setup, data, cuda_tests, bench, train, evaluate, airbench) under a time limit and writes
`check/<part>.status`, one line: the outcome (ok, failed, timeout, skipped or not_run), its seconds and a detail
(the exit status of a failure, the reason of a skip), beside the part's output in `check/<part>.log`. The figures
are where the commands write them in the scratch folder: `pipeline bench`'s metrics/bench/<model>.json, the train
stage's resolved settings, evaluate's test.json, `pipeline bench-airbench`'s check/airbench.json. A part that gave
no figures shows its outcome in its cells ("timed out after 90 s"), so a hung part still leaves a table.
"""

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from pipeline.config.resolution import RESOLVED_PARAMS_FILE
from pipeline.core.paths import Paths
from pipeline.data.store import load_split

RATIO_GOAL = 0.9  # the train stage keeps at least this share of its bare step's speed (issue 43)
BUDGET_S = 480  # the whole check, on an H100


@dataclass(frozen=True)
class Outcome:
    """How one part of the check ended, as its `check/<part>.status` line says."""

    status: str
    seconds: int
    detail: str


def read_outcome(check: Path, part: str) -> Outcome | None:
    """The part's outcome, or None where the script wrote none (it stopped before the part)."""
    path = check / f"{part}.status"
    if not path.is_file():
        return None
    status, seconds, *detail = path.read_text().split(maxsplit=2)
    return Outcome(status, int(seconds), " ".join(detail).strip())


def last_line(path: Path) -> str:
    """The last non-blank line of a part's log (pytest's summary, a command's error line), or ''."""
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()] if path.is_file() else []
    return lines[-1] if lines else ""


def outcome_text(check: Path, part: str, outcome: Outcome | None) -> str:
    """What a cell says of a part that left no figures."""
    if outcome is None:
        return "not run (the check stopped before it)"
    texts = {
        "timeout": f"timed out after {outcome.seconds} s",
        "failed": f"failed (exit {outcome.detail}): {last_line(check / f'{part}.log')}",
        "skipped": f"skipped: {outcome.detail}",
        "not_run": f"not run: {outcome.detail}",
    }
    return texts.get(outcome.status, f"no figures (see {check / f'{part}.log'})")


def _json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _images(count: float) -> str:
    return f"{count:,.0f} images/s"


def _ratio(figures: dict[str, Any]) -> str:
    ratio = figures["ratio"]
    return f"**{ratio:.2f}**, {'meets the goal' if ratio >= RATIO_GOAL else 'below the goal'}"


def _epochs(figures: dict[str, Any]) -> str:
    images = figures["train_images"]
    return (
        f"{images / figures['stage_images_per_s']:.2f} s / {images / figures['step_images_per_s']:.2f} s "
        f"({images:,} images, batch {figures['batch_size']})"
    )


def _split_counts(paths: Paths, dataset: str) -> str:
    """The preprocessed splits' sizes and image shape, as the arrays hold them."""
    splits = {name: load_split(paths, dataset, name).inputs for name in ("train", "val", "test")}
    height, width, channels = splits["train"].shape[1:]
    sizes = " / ".join(f"{len(inputs):,} {name}" for name, inputs in splits.items())
    return f"{sizes}, {height}x{width}x{channels}"


def device_text() -> str:
    """The GPU torch sees (or that there is none), torch's version and CUDA's, and the CPU cores."""
    import torch

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA GPU (CPU only)"
    return f"{device}; torch {torch.__version__} (CUDA {torch.version.cuda}); {os.cpu_count()} CPU cores"


class _Check:
    """The scratch folder of one run of the script: its outcomes and figures, cell by cell."""

    def __init__(self, root: Path, model: str, dataset: str) -> None:
        self.paths, self.check, self.model, self.dataset = Paths(root), root / "check", model, dataset

    def cell(self, part: str, figures: dict[str, Any] | None, render: Callable[[dict[str, Any]], str]) -> str:
        """`render(figures)` where the part ended well and left them, else what became of the part."""
        outcome = read_outcome(self.check, part)
        if outcome is not None and outcome.status == "ok" and figures is not None:
            return render(figures)
        return outcome_text(self.check, part, outcome)

    def outcome(self, part: str) -> dict[str, Any] | None:
        """The part's outcome as figures (status, seconds, detail), or None where it has none."""
        outcome = read_outcome(self.check, part)
        return vars(outcome) if outcome is not None else None

    def rows(self, seconds: int) -> list[tuple[str, str, str]]:
        """The table's rows: check, result, goal."""
        model, bench = f"`{self.model}`", _json(self.paths.bench_file(self.model))
        resolved = _json(self.paths.train_dir(self.model) / RESOLVED_PARAMS_FILE)
        train = self.outcome("train") if resolved else None
        data = self.outcome("data") if (self.paths.processed_dir(self.dataset) / "meta.json").is_file() else None
        test, airbench = _json(self.paths.test_metrics(self.model)), _json(self.check / "airbench.json")
        return [
            ("device", self._device(), ""),
            ("setup", self.cell("setup", {}, lambda _: last_line(self.check / "setup.log").removeprefix("setup: ")), ""),
            ("data (generated, source `sample`)", self.cell("data", data, self._data), ""),
            ("`tests/test_cuda.py`", self.cell("cuda_tests", {}, lambda _: last_line(self.check / "cuda_tests.log")),
             "all pass"),
            (f"{model} bare training step", self.cell("bench", bench, lambda f: _images(f["step_images_per_s"])), ""),
            (f"{model} train stage, an epoch less its validation pass",
             self.cell("bench", bench, lambda f: _images(f["stage_images_per_s"])), ""),
            ("**ratio stage / step**", self.cell("bench", bench, _ratio), f">= {RATIO_GOAL}"),
            (f"{model} epoch: train stage / bare step", self.cell("bench", bench, _epochs), ""),
            ("airbench94 epoch", self.cell("airbench", airbench, lambda f: f"{f['epoch_s']:.2f} s (batch "
                                           f"{f['batch_size']})"), ""),
            (f"{model} training: the train stage process, start to end",
             self.cell("train", train, lambda f: f"{f['seconds']} s (epochs: {resolved['epochs']})"), ""),
            ("airbench94 training, after its warm-up",
             self.cell("airbench", airbench, lambda f: f"{f['train_s']:.1f} s (epochs: {f['epochs']})"), ""),
            (f"{model} test accuracy (evaluate)",
             self.cell("evaluate", test, lambda f: f"{f['accuracy']:.4f} (tta {f['tta']}, {f['samples']:,} images)"), ""),
            ("airbench94 test accuracy", self.cell("airbench", airbench, lambda f: f"{f['test_accuracy']:.4f} (tta "
                                                   f"level {f['tta_level']}, {f['test_images']:,} images)"), ""),
            ("the whole check", f"{seconds} s", f"<= {BUDGET_S} s"),
        ]

    def _device(self) -> str:
        path = self.check / "device.txt"
        return path.read_text().strip() if path.is_file() else "unknown (the check stopped before it looked)"

    def _data(self, outcome: dict[str, Any]) -> str:
        made = "reused from an earlier run" if outcome["detail"] == "reused" else f"made in {outcome['seconds']} s"
        return f"{_split_counts(self.paths, self.dataset)}; {made}"


def gpu_check_table(root: Path, seconds: int, model: str, dataset: str) -> str:
    """The check's one markdown table, from the scratch folder `root` the script ran in, with a title naming the
    kind of run (gpu, or cpu: the tiny flow) and the day."""
    check = _Check(root, model, dataset)
    mode = (root / "check" / "mode").read_text().strip() if (root / "check" / "mode").is_file() else "unknown"
    lines = [f"GPU check (`bash scripts/gpu_check.sh`, a {mode} run), {date.today().isoformat()}", ""]
    lines += ["| check | result | goal |", "|---|---|---|"]
    lines += [f"| {name} | {result.replace('|', '/')} | {goal} |" for name, result, goal in check.rows(seconds)]
    return "\n".join(lines)
