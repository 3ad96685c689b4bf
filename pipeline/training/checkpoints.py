"""End-of-epoch checkpoints, so a killed training run resumes where it stopped.

A checkpoint holds the model, optimizer and scheduler state (and the moving average of the weights, `train.ema`, or the lookahead's, `train.lookahead_every`) and
the history so far, tagged with a fingerprint of everything the run depends on: the model's params (all of them
but `train.device` and `train.workers`, which do not change the results, and `train.stop_after`, which only says
where the run ends: the same run with it set, as `pipeline tune` re-runs a trial it pruned, resumes the checkpoint of
the run without it), the seed, the bytes of the training and validation data, the source of every `pipeline` module
the process has loaded, and the torch version. Every epoch draws its randomness (shuffle order, dropout,
augmentation) from (seed, epoch) alone, so a resumed run continues exactly as an uninterrupted one would.

The checkpoint before the latest is kept beside it (`<model>.prev.ckpt`). A checkpoint that does not fit the run
(unreadable: a disk error, a crafted file; another fingerprint: other params, data or code; more epochs than
`train.stop_after`; state that does not load into the model or optimizer) is removed with one warning line naming it
and why, and the run resumes from the one before, or else starts over.
"""

import copy
import hashlib
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, ValidationError

from pipeline.config.params import ModelConfig
from pipeline.core.atomic import save_torch
from pipeline.core.errors import PipelineError
from pipeline.core.preprocessing import problems
from pipeline.core.torchfile import read_torch_file
from pipeline.training.keep import KeptWeights

log = logging.getLogger(__name__)
MAX_REASON = 300  # characters of a state loading error kept in the warning
UNFINGERPRINTED = {"device", "workers", "stop_after"}  # train keys that do not change what any epoch computes


def run_fingerprint(config: ModelConfig, seed: int, data_files: list[Path]) -> str:
    """A digest of the model params (all but UNFINGERPRINTED's), the seed, the bytes of the data the run trains and
    validates on, and the code it runs (`code_digest`)."""
    fingerprinted = {
        "model": [config.name, config.dataset, config.arch],
        "arch_args": config.arch_args.model_dump(mode="json"),
        "train": config.train.model_dump(mode="json", exclude=UNFINGERPRINTED),
        "aug": config.aug.model_dump(mode="json"),
        "seed": seed,
        "code": code_digest(),
    }
    digest = hashlib.sha256(json.dumps(fingerprinted, sort_keys=True).encode())
    for path in data_files:
        with path.open("rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()


def code_digest() -> str:
    """A sha256 of the torch version and the name and source bytes of every loaded `pipeline` module, by name: edit
    the model code (or upgrade torch) and a killed run's checkpoint no longer matches."""
    digest = hashlib.sha256(torch.__version__.encode())
    for name, module in sorted(sys.modules.items()):
        source = getattr(module, "__file__", None)
        if (name == "pipeline" or name.startswith("pipeline.")) and source:
            digest.update(name.encode() + b"\0" + Path(source).read_bytes())
    return digest.hexdigest()


@dataclass
class Checkpoint:
    """Where a run's checkpoint lives, which run it belongs to and the epoch it ends after (`train.stop_after`)."""

    path: Path
    fingerprint: str
    kept: KeptWeights = field(default_factory=lambda: KeptWeights("last", "val_loss"))
    stop_after: int | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    resumed_from: Path | None = None  # the checkpoint `restore` loaded, if any

    @property
    def previous(self) -> Path:
        """Where the checkpoint before the latest is kept: `<model>.prev.ckpt` beside `<model>.ckpt`."""
        return self.path.with_suffix(".prev" + self.path.suffix)

    def restore(self, states: dict[str, Any]) -> int:
        """Load the run's newest fitting checkpoint into the objects by name (the model, and the recipe's
        `TrainingRecipe.states`: optimiser, scheduler, the weights' moving average or lookahead when on), if any;
        returns the epochs already done.

        A checkpoint that does not fit (unreadable, of another run, or with state the objects cannot take) is only a
        lost head start: a warning names it and why, it is removed (so that no later save keeps it as the one to fall
        back on), and the one before it is tried.
        """
        unfit = []
        for path in (self.path, self.previous):
            if not path.is_file():
                continue
            try:
                done = self._load(path, self._read(path), states)
            except PipelineError as exc:
                unfit.append(str(exc))
                path.unlink(missing_ok=True)  # under torchrun, another process may have removed it
                continue
            _warn_removed(unfit, f"resuming from {path}")
            self.resumed_from = path
            return done
        _warn_removed(unfit, "training starts over")
        return 0

    def _read(self, path: Path) -> "CheckpointFile":
        """The checkpoint at `path`; PipelineError if it cannot be read, is not a checkpoint of this format,
        belongs to another run or holds epochs beyond `stop_after`."""
        try:
            saved = CheckpointFile.model_validate(read_torch_file(path, "checkpoint"))
        except ValidationError as exc:
            raise PipelineError(f"{path}: not a checkpoint of this pipeline ({problems(exc, '')})") from None
        if saved.fingerprint != self.fingerprint:
            raise PipelineError(
                f"{path}: a checkpoint of another run (its fingerprint differs: other params, data, code or torch version)"
            )
        if self.stop_after is not None and len(saved.history) > self.stop_after:
            raise PipelineError(f"{path}: holds {len(saved.history)} epochs, beyond train.stop_after {self.stop_after}")
        return saved

    def _load(self, path: Path, saved: "CheckpointFile", states: dict[str, Any]) -> int:
        """Put the checkpoint read from `path` into the objects; returns the epochs it holds. State that does not
        load (a missing entry, a tensor of another shape) is a PipelineError naming `path`, with the objects as
        they were, so that training can start over from them."""
        targets = {**states, "kept": self.kept}
        before = {name: copy.deepcopy(target.state_dict()) for name, target in targets.items()}
        try:
            for name, target in targets.items():
                target.load_state_dict(saved.state_of(name))
            self.history = list(saved.history)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            for name, target in targets.items():
                target.load_state_dict(before[name])
            raise PipelineError(f"{path}: its state does not load into this run ({_one_line(exc)})") from None
        return len(self.history)

    def save(self, states: dict[str, Any]) -> None:
        """Write the objects' states (as `restore` takes them) after the epochs in `history`, atomically; the
        checkpoint it replaces becomes `previous`.

        Killed between the two steps, the run resumes from `previous`, one epoch back.
        """
        payload = {
            "fingerprint": self.fingerprint,
            **{name: target.state_dict() for name, target in states.items()},
            "history": self.history,
            "kept": self.kept.state_dict(),
        }
        if self.path.is_file():
            os.replace(self.path, self.previous)
        save_torch(self.path, payload)

    def remove(self) -> None:
        """Drop the checkpoints once the run has finished and its model is saved."""
        self.path.unlink(missing_ok=True)
        self.previous.unlink(missing_ok=True)


class CheckpointFile(BaseModel):
    """What a checkpoint file holds: the run's fingerprint, the state of each object by name (`ema` and `lookahead`
    only when on), the history of the epochs done and the kept weights."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    fingerprint: str
    model: dict[str, Any]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    ema: dict[str, Any] | None = None
    lookahead: dict[str, Any] | None = None
    history: list[dict[str, Any]]
    kept: dict[str, Any]

    def state_of(self, name: str) -> dict[str, Any]:
        """The saved state of the object `name`; KeyError if the file has none (a run without `train.ema`)."""
        state = getattr(self, name)
        if state is None:
            raise KeyError(name)
        return state


def _warn_removed(unfit: list[str], outcome: str) -> None:
    """One warning line for the checkpoints that did not fit (if any) and were removed, and what training does now."""
    if unfit:
        log.warning("warning: %s; removed, %s", "; ".join(unfit), outcome)


def _one_line(exc: Exception) -> str:
    """Why loading state failed, in one line of at most MAX_REASON characters: torch's messages run over many."""
    text = f"{exc.__class__.__name__}: {' '.join(str(exc).split())}"
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 3] + "..."
