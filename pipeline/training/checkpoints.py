"""End-of-epoch checkpoints, so a killed training run resumes where it stopped.

A checkpoint holds the model, optimizer and scheduler state and the history so far, tagged with a fingerprint of
everything the run depends on (model settings, seed, training and validation data). A checkpoint with another
fingerprint belongs to another run and is ignored. Every epoch draws its randomness (shuffle order, dropout,
augmentation) from (seed, epoch) alone, so a resumed run continues exactly as an uninterrupted one would.

The checkpoint before the latest is kept beside it (`<model>.prev.ckpt`): should the latest be unreadable (a disk
error, a crafted file), the run warns and resumes from the one before, or else starts over.
"""

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.config.params import ModelConfig
from pipeline.core.atomic import save_torch
from pipeline.core.errors import PipelineError
from pipeline.core.torchfile import read_torch_file
from pipeline.training.keep import KeptWeights

log = logging.getLogger(__name__)


def run_fingerprint(config: ModelConfig, seed: int, data_files: list[Path]) -> str:
    """A digest of the model settings, the seed and the bytes of the data the run trains and validates on."""
    settings = {
        "model": [config.name, config.dataset, config.arch],
        "arch_args": config.arch_args.model_dump(mode="json"),
        "train": config.train.model_dump(mode="json", exclude={"device", "workers"}),
        "aug": config.aug.model_dump(mode="json"),
        "seed": seed,
    }
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for path in data_files:
        with path.open("rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()


@dataclass
class Checkpoint:
    """Where a run's checkpoint lives and which run it belongs to."""

    path: Path
    fingerprint: str
    kept: KeptWeights = field(default_factory=lambda: KeptWeights("last", "val_loss"))
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def previous(self) -> Path:
        """Where the checkpoint before the latest is kept: `<model>.prev.ckpt` beside `<model>.ckpt`."""
        return self.path.with_suffix(".prev" + self.path.suffix)

    def restore(self, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any) -> int:
        """Load the run's newest readable checkpoint into the objects, if any; returns the epochs already done.

        An unreadable checkpoint is only a lost head start: a warning names it, it is removed (so that no later save
        keeps it as the one to fall back on), and the one before it is tried.
        """
        unreadable = []
        for path in (self.path, self.previous):
            try:
                saved = self._read(path)
            except PipelineError as exc:
                unreadable.append(str(exc))
                path.unlink(missing_ok=True)  # under torchrun, another process may have removed it
                continue
            if saved is not None:
                _warn_removed(unreadable, f"resuming from {path}")
                return self._load(saved, model, optimizer, scheduler)
        _warn_removed(unreadable, "training starts over")
        return 0

    def _read(self, path: Path) -> dict[str, Any] | None:
        """The checkpoint at `path` if there is one of this run; PipelineError if it cannot be read."""
        if not path.is_file():
            return None
        saved = read_torch_file(path, "checkpoint")
        return saved if saved.get("fingerprint") == self.fingerprint else None

    def _load(self, saved: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any) -> int:
        """Put a read checkpoint's state into the objects; returns the epochs it holds."""
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        self.kept.load_state_dict(saved["kept"])
        self.history = list(saved["history"])
        return len(self.history)

    def save(self, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any) -> None:
        """Write the state after the epochs in `history`, atomically; the checkpoint it replaces becomes `previous`.

        Killed between the two steps, the run resumes from `previous`, one epoch back.
        """
        payload = {
            "fingerprint": self.fingerprint,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
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


def _warn_removed(unreadable: list[str], outcome: str) -> None:
    """One warning line for the unreadable checkpoints (if any) that were removed, and what training does now."""
    if unreadable:
        log.warning("warning: %s; removed, %s", "; ".join(unreadable), outcome)
