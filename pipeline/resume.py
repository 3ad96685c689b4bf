"""End-of-epoch checkpoints, so a killed training run resumes where it stopped.

A checkpoint holds the model, optimizer and scheduler state and the history so far, tagged with a fingerprint of
everything the run depends on (model settings, seed, training and validation data). A checkpoint with another
fingerprint belongs to another run and is ignored. Every epoch draws its randomness (shuffle order, dropout,
augmentation) from (seed, epoch) alone, so a resumed run continues exactly as an uninterrupted one would.
"""

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.atomic import atomic_path
from pipeline.params import ModelConfig


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
    history: list[dict[str, float]] = field(default_factory=list)

    def restore(self, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any) -> int:
        """Load the run's last checkpoint into the objects, if there is one; returns the epochs already done."""
        if not self.path.is_file():
            return 0
        try:
            saved = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - an unreadable checkpoint is only a lost head start
            return 0
        if saved.get("fingerprint") != self.fingerprint:
            return 0
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        self.history = list(saved["history"])
        return len(self.history)

    def save(self, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any) -> None:
        """Write the state after the epochs in `history`, atomically."""
        payload = {
            "fingerprint": self.fingerprint,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "history": self.history,
        }
        with atomic_path(self.path) as tmp:
            torch.save(payload, tmp)

    def remove(self) -> None:
        """Drop the checkpoint once the run has finished and its model is saved."""
        self.path.unlink(missing_ok=True)
