"""The model file: weights plus everything needed to rebuild the model without re-reading params.yaml."""

from pathlib import Path
from typing import Any

from torch import nn

from pipeline.config.archs import ARCH_ARGS
from pipeline.config.params import ModelConfig
from pipeline.core.atomic import save_torch
from pipeline.core.errors import PipelineError
from pipeline.core.torchfile import read_torch_file
from pipeline.models.registry import build_model


def save_model(
    path: Path, model: nn.Module, config: ModelConfig, data: dict[str, Any], seed: int, epoch: int
) -> None:
    """Save weights with their provenance (architecture, args, dataset, classes, input shape and normalisation,
    training params, and which epoch's weights they are: `kept` is `train.keep`, best or last)."""
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
        "epoch": epoch,
        "kept": config.train.keep,
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
