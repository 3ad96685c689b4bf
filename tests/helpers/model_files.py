"""Model files written without training: an untrained architecture saved by `save_model` as the train stage saves
one, for the tests of the model file and of predict that need a model but not a good one."""

from pathlib import Path
from typing import Any

import torch

from pipeline.config.archs import CatsDogsCnnArgs
from pipeline.config.params import ModelConfig
from pipeline.config.training import AugParams, TrainParams
from pipeline.core.torchfile import read_torch_file
from pipeline.data.store import DatasetMeta
from pipeline.models.calibration import Calibration, file_sha256
from pipeline.models.file import save_model
from pipeline.models.registry import build_model


def untrained_model(path: Path, meta: DatasetMeta, name: str = "catsdogs_cnn", seed: int = 0) -> Path:
    """Save a freshly initialised catsdogs_cnn (seeded) for a dataset described by `meta` (preprocess's meta.json)."""
    channels = 1 if meta.color == "gray" else 3
    torch.manual_seed(seed)
    args = CatsDogsCnnArgs(dense=8)
    model = build_model("catsdogs_cnn", args, in_channels=channels, size=meta.size, num_classes=len(meta.classes))
    config = ModelConfig(name, "catsdogs", "catsdogs_cnn", args, TrainParams(), AugParams())
    save_model(path, model, config, meta, channels, seed=seed, epoch=1)
    return path


def image_meta(classes: list[str], size: int = 24, color: str = "gray", **changes: Any) -> DatasetMeta:
    """A meta.json of preprocessed images (normalised with made-up statistics), `changes` applied."""
    channels = 1 if color == "gray" else 3
    meta = {"kind": "images", "classes": classes, "size": size, "color": color, "resize": "squash",
            "mean": [0.4] * channels, "std": [0.2] * channels, "normalize": True}
    return DatasetMeta.model_validate({**meta, **changes})


def rewritten(path: Path, change) -> Path:
    """The model file with `change` applied to its payload (a dict, changed in place), saved again."""
    saved = read_torch_file(path, "model file")
    change(saved)
    torch.save(saved, path)
    return path


def calibration_of(temperature: float, model_file: Path) -> Calibration:
    """An applied calibration of `temperature` for the model file as it is now, as evaluate writes one."""
    held_out = {"nll_as_trained": 0.7, "nll_calibrated": 0.6, "ece_as_trained": 0.2, "ece_calibrated": 0.1,
                "standard_error": 0.01}
    return Calibration(
        temperature=temperature, applied=True, fitted_temperature=temperature, samples=6, held_out=held_out,
        model_sha256=file_sha256(model_file),
    )
