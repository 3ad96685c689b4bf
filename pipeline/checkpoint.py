"""The model file: weights plus everything needed to rebuild the model without re-reading params.yaml."""

import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.atomic import save_torch
from pipeline.errors import PipelineError
from pipeline.models import build_model
from pipeline.params import ARCH_ARGS, ModelConfig

CRAFTED = re.compile(r"Unsupported global: GLOBAL (\S+)")  # what torch's weights-only unpickler refused to call


def save_model(path: Path, model: nn.Module, config: ModelConfig, data: dict[str, Any], seed: int) -> None:
    """Save weights with their provenance (architecture, args, dataset, classes, input shape and normalisation,
    training params)."""
    payload = {
        "model": config.name,
        "arch": config.arch,
        "arch_args": config.arch_args.model_dump(mode="json"),
        "dataset": config.dataset,
        "classes": list(data["classes"]),
        "size": data["size"],
        "channels": data["channels"],
        "normalization": {key: data[key] for key in ("normalize", "mean", "std")},
        "train": config.train.model_dump(mode="json"),
        "aug": config.aug.model_dump(mode="json"),
        "seed": seed,
        "state_dict": {key: value.detach().cpu() for key, value in model.state_dict().items()},
    }
    save_torch(path, payload)


def load_model(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a saved model (on the CPU, in eval mode) and return it with its provenance."""
    if not path.is_file():
        raise PipelineError(f"{path}: model not found; run the train stage first")
    try:
        saved = read_torch_file(path, "model file")
    except PipelineError as exc:
        raise PipelineError(f"{exc}; run the train stage again") from None
    args = ARCH_ARGS[saved["arch"]].model_validate(saved["arch_args"])
    model = build_model(
        saved["arch"],
        args,
        in_channels=saved["channels"],
        size=saved["size"],
        num_classes=len(saved["classes"]),
        load_weights=False,  # the saved state_dict replaces any pretrained weights: never download them here
    )
    model.load_state_dict(saved.pop("state_dict"))
    return model.eval(), saved


def read_torch_file(path: Path, what: str) -> dict[str, Any]:
    """A dict that `torch.save` wrote, loaded with `weights_only`: tensors and plain containers only, so a crafted
    file cannot run code. A truncated, corrupt or crafted file is a PipelineError naming it, in one line."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - whatever the damage, the user's remedy is the same
        raise PipelineError(f"{path}: {_unreadable(exc, what)}") from None
    if not isinstance(saved, dict):
        raise PipelineError(f"{path}: not a readable {what} (holds a {type(saved).__name__}, not a dict)")
    return saved


def _unreadable(exc: Exception, what: str) -> str:
    """Why torch could not load a file, in one line: torch's own messages run over many."""
    crafted = CRAFTED.search(str(exc))
    if crafted:
        return (
            f"refused to load this {what}: it asks to run {crafted[1]}, not just to rebuild tensors and plain data "
            "(a crafted file runs code this way)"
        )
    first = next(iter(str(exc).strip().splitlines()), "").split(". ")[0]
    return f"not a readable {what} ({exc.__class__.__name__}: {first})"
