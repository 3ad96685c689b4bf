"""What a training run leaves behind, written by one process: with DVCLive (`metrics/<model>/train/`), each epoch's
row, a checkpoint after it, a preview of what `aug.*` does to training images, and at the end the summary (`best`,
`bn_check`) and the learning curves. Under torchrun rank 0 is the writer (`RunRecords`); the other processes train
alongside it and record nothing (`SilentRecords`)."""

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dvclive import Live
from matplotlib.figure import Figure

from pipeline.analysis.plots import augmentation_preview, learning_curves
from pipeline.config.params import ModelConfig
from pipeline.config.resolution import RESOLVED_PARAMS_FILE
from pipeline.core.atomic import write_json
from pipeline.core.distributed import Shard
from pipeline.core.paths import Paths
from pipeline.data.store import SplitArrays
from pipeline.training.augment import describe
from pipeline.training.checkpoints import Checkpoint
from pipeline.training.feed import augmented_samples

PREVIEW_IMAGES, PREVIEW_DRAWS = 6, 3


class RunRecords:
    """The writing process's records of the run (see the module's docstring)."""

    def __init__(self, live: Live, config: ModelConfig, checkpoint: Checkpoint) -> None:
        self.live, self.config, self.checkpoint = live, config, checkpoint

    def start(self, train_set: SplitArrays, is_table: bool, seed: int, resolved: dict[str, Any]) -> None:
        """The model's resolved settings (`resolved_params.json`, a metrics file for `dvc exp show`), the
        augmentation preview (images only: a table's rows are not augmented), then the rows of the epochs a resumed
        run already has."""
        write_json(Path(self.live.dir) / RESOLVED_PARAMS_FILE, resolved)
        if not is_table:
            self.live.log_image("augmentation.png", _augmentation_preview(self.config, seed, train_set))
        for row in self.checkpoint.history:
            self._log(row)

    def epoch_done(self, row: dict[str, float], states: dict[str, Any]) -> None:
        """Log the epoch's row, then checkpoint the objects' states by name (model, optimiser, scheduler, ...)."""
        self._log(row)
        self.checkpoint.save(states)

    def summarise(self, chosen: dict[str, float], title: str, stopped_at: int | None) -> dict[str, Any]:
        """The kept epoch's validation figures as the run's summary (`best` in metrics.json), the epoch early
        stopping or `train.stop_after` ended the run at (`stopped_at`, only with either on), and the curves."""
        best = {"epoch": chosen["epoch"], "val/acc": chosen["val/acc"], "val/loss": chosen["val/loss"]}
        self.live.summary["best"] = best
        summary: dict[str, Any] = {"best": best}
        if stopped_at is not None:
            self.live.summary["stopped_at"] = summary["stopped_at"] = stopped_at
        self.live.log_image("learning_curves.png", learning_curves(self.checkpoint.history, title))
        return summary

    def bn_check(self, check: dict[str, float | bool]) -> dict[str, float | bool]:
        """Record BatchNorm's train/eval mode check in the summary; returns it."""
        self.live.summary["bn_check"] = check
        return check

    def _log(self, row: dict[str, float]) -> None:
        self.live.step = int(row["epoch"])
        for key, value in row.items():
            if key != "epoch":
                self.live.log_metric(key, value)
        self.live.next_step()


class SilentRecords:
    """The records of a process that trains beside the writer: none."""

    def start(self, train_set: SplitArrays, is_table: bool, seed: int, resolved: dict[str, Any]) -> None:
        """Nothing to write, preview or replay."""

    def epoch_done(self, row: dict[str, float], states: dict[str, Any]) -> None:
        """Nothing to log or checkpoint."""


@contextlib.contextmanager
def recorder(paths: Paths, config: ModelConfig, checkpoint: Checkpoint, shard: Shard) -> Iterator[RunRecords | SilentRecords]:
    """The writer (DVCLive open for the run, its files written on exit) on rank 0; a bystander elsewhere."""
    if not shard.is_main:
        yield SilentRecords()
        return
    with Live(str(paths.train_dir(config.name)), dvcyaml=None, save_dvc_exp=False) as live:
        yield RunRecords(live, config, checkpoint)


def _augmentation_preview(config: ModelConfig, seed: int, train_set: SplitArrays) -> Figure:
    """The first training images beside augmented versions of them, to see what `aug.*` does to the data."""
    originals = train_set.inputs[:PREVIEW_IMAGES]
    versions = augmented_samples(config.aug, seed, originals, PREVIEW_DRAWS)
    return augmentation_preview(originals, versions, f"{config.name}: {describe(config.aug)}")
