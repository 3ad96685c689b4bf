"""The model file: weights plus everything needed to rebuild the model without re-reading params.yaml, and to make a
new image into exactly the input training saw (`preprocessing`, see `pipeline.core.preprocessing`).

`format` says which version of the pipeline wrote it: 2 records the whole image preprocessing (colour and resize
policy included). A file of another format, or one whose keys are missing or of the wrong type (a crafted file), is
refused with a message that names it and says how to write it again.
"""

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from torch import nn

from pipeline.config.archs import ARCH_ARGS
from pipeline.config.params import ModelConfig
from pipeline.core.atomic import save_torch
from pipeline.core.errors import PipelineError
from pipeline.core.preprocessing import Preprocessing, problems
from pipeline.core.torchfile import read_torch_file
from pipeline.models.registry import build_model

FORMAT = 2


def save_model(
    path: Path, model: nn.Module, config: ModelConfig, data: dict[str, Any], seed: int, epoch: int
) -> None:
    """Save weights with their provenance (architecture, args, dataset, classes, input shape and normalisation,
    training params, and which epoch's weights they are: `kept` is `train.keep`, best or last). `data` is the
    dataset's meta.json with the input's `channels`; for images its preprocessing is saved whole, for a table
    `preprocessing` is None."""
    images = data.get("kind", "images") == "images"
    payload = {
        "format": FORMAT,
        "model": config.name,
        "arch": config.arch,
        "arch_args": config.arch_args.model_dump(mode="json"),
        "dataset": config.dataset,
        "classes": list(data["classes"]),
        "size": data["size"],
        "channels": data["channels"],
        "normalization": {key: data[key] for key in ("normalize", "mean", "std")},
        "preprocessing": Preprocessing.from_dict(data).to_dict() if images else None,
        "train": config.train.model_dump(mode="json"),
        "aug": config.aug.model_dump(mode="json"),
        "seed": seed,
        "epoch": epoch,
        "kept": config.train.keep,
        "state_dict": {key: value.detach().cpu() for key, value in model.state_dict().items()},
    }
    save_torch(path, payload)


def load_model(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a saved model (on the CPU, in eval mode) and return it with its provenance; a file of another format,
    with missing or ill-typed keys or weights that do not fit its architecture is a PipelineError naming it."""
    if not path.is_file():
        raise PipelineError(f"{path}: model not found; run the train stage first")
    try:
        saved = read_torch_file(path, "model file")
    except PipelineError as exc:
        raise PipelineError(f"{exc}; run the train stage again") from None
    try:
        return _rebuilt(saved), saved
    except _Refused as exc:
        name = saved["model"] if isinstance(saved.get("model"), str) else path.stem
        raise PipelineError(f"{path}: {exc}; re-run `dvc repro train@{name}` to write it again") from None


class _Refused(Exception):
    """Why a readable model file cannot be used."""


def _rebuilt(saved: dict[str, Any]) -> nn.Module:
    """The model a readable file describes, once its format and keys are checked."""
    found = saved.get("format")
    if found != FORMAT:
        version = "an older version" if found is None else f"another version (format {found!r})"
        raise _Refused(f"written by {version} of the pipeline; this one reads model files of format {FORMAT}")
    try:
        _Provenance.model_validate(saved)
        if saved["preprocessing"] is not None:
            Preprocessing.from_dict(saved["preprocessing"])
        if saved["arch"] not in ARCH_ARGS:
            raise _Refused(f"not a valid model file (arch: unknown architecture {saved['arch']!r})")
        args = ARCH_ARGS[saved["arch"]].model_validate(saved["arch_args"])
    except ValidationError as exc:
        raise _Refused(f"not a valid model file ({problems(exc, '')})") from None
    except PipelineError as exc:
        raise _Refused(f"not a valid model file ({exc})") from None
    try:
        model = build_model(
            saved["arch"],
            args,
            in_channels=saved["channels"],
            size=saved["size"],
            num_classes=len(saved["classes"]),
            load_weights=False,  # the saved state_dict replaces any pretrained weights: never download them here
        )
        model.load_state_dict(saved.pop("state_dict"))
    except (PipelineError, RuntimeError, TypeError, ValueError) as exc:
        said = " ".join(str(exc).split()) or type(exc).__name__  # torch's message runs over several lines
        raise _Refused(f"its weights do not fit its architecture ({said[:300]})") from None
    return model.eval()


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True)


class _Normalization(_Strict):
    normalize: bool
    mean: list[float]
    std: list[float]


class _Provenance(_Strict):
    """The keys a model file of this format holds, with their types (others are allowed)."""

    model: str
    arch: str
    arch_args: dict[str, Any]
    dataset: str
    classes: list[str]
    size: int
    channels: int
    normalization: _Normalization
    preprocessing: dict[str, Any] | None
    train: dict[str, Any]
    aug: dict[str, Any]
    seed: int
    epoch: int
    kept: str
    state_dict: dict[str, Any]
