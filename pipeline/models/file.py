"""The model file: weights plus everything needed to rebuild the model without re-reading params.yaml, and to make a
new image into exactly the input training saw (`preprocessing`, see `pipeline.core.preprocessing`).

`format` says which version of the pipeline wrote it: 2 records the whole image preprocessing (colour and resize
policy included). A file of another format, or one whose keys are missing or of the wrong type (a crafted file), is
refused with a message that names it and says how to write it again. What it holds besides the weights is read as a
`SavedModel`, a validated view with a field per key.
"""

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from torch import nn

from pipeline.config.archs import ARCH_ARGS
from pipeline.config.params import ModelConfig
from pipeline.config.training import AugParams, TrainParams
from pipeline.core.atomic import save_torch
from pipeline.core.errors import PipelineError
from pipeline.core.preprocessing import Preprocessing, problems
from pipeline.core.torchfile import read_torch_file
from pipeline.data.store import DatasetMeta
from pipeline.models.registry import build_model
from pipeline.models.timm_nets import backbone_facts

FORMAT = 2


def save_model(
    path: Path,
    model: nn.Module,
    config: ModelConfig,
    meta: DatasetMeta,
    channels: int,
    seed: int,
    epoch: int,
    stopped_at: int | None = None,
) -> None:
    """Save weights with their provenance (architecture, args, dataset, classes, input shape and normalisation,
    training params, and which epoch's weights they are: `kept` is `train.keep`, best or last). `meta` is the
    preprocessed dataset's, `channels` the input's; for images the preprocessing is saved whole, for a table
    `preprocessing` is None. `stopped_at`, the last epoch of a run with early stopping on or `stop_after` set, is
    saved when given; a timm backbone's own input size, mean and std as `backbone`."""
    # Built from meta.json's values as JSON decodes them, one object each (lists and strings), shared where the
    # records below repeat them: pickle writes a shared object once, so this fixes the file's bytes.
    data = json.loads(meta.model_dump_json())
    payload = {
        "format": FORMAT,
        "model": config.name,
        "arch": config.arch,
        "arch_args": config.arch_args.model_dump(mode="json"),
        "dataset": config.dataset,
        "classes": list(data["classes"]),
        "size": meta.size,
        "channels": channels,
        "normalization": {key: data[key] for key in ("normalize", "mean", "std")},
        "preprocessing": None if meta.is_table else Preprocessing.from_dict(data).to_dict(),
        "train": config.train.recorded(),
        "aug": config.aug.model_dump(mode="json"),
        "seed": seed,
        "epoch": epoch,
        "kept": config.train.keep,
        **({} if stopped_at is None else {"stopped_at": stopped_at}),
        **({} if backbone_facts(model) is None else {"backbone": backbone_facts(model)}),
        "state_dict": {key: value.detach().cpu() for key, value in model.state_dict().items()},
    }
    save_torch(path, payload)


def load_model(path: Path) -> tuple[nn.Module, "SavedModel"]:
    """Rebuild a saved model (on the CPU, in eval mode) and return it with its provenance; a file of another format,
    with missing or ill-typed keys or weights that do not fit its architecture is a PipelineError naming it."""
    if not path.is_file():
        raise PipelineError(f"{path}: model not found; run the train stage first: `dvc repro train@{path.stem}`")
    try:
        saved = read_torch_file(path, "model file")
    except PipelineError as exc:
        raise PipelineError(f"{exc}; run the train stage again: `dvc repro train@{path.stem}`") from None
    try:
        return _rebuilt(saved)
    except _Refused as exc:
        name = saved["model"] if isinstance(saved.get("model"), str) else path.stem
        raise PipelineError(f"{path}: {exc}; re-run `dvc repro train@{name}` to write it again") from None


class _Refused(Exception):
    """Why a readable model file cannot be used."""


def _rebuilt(saved: dict[str, Any]) -> tuple[nn.Module, "SavedModel"]:
    """The model a readable file describes and its provenance, once its format and keys are checked."""
    found = saved.get("format")
    if found != FORMAT:
        version = "an older version" if found is None else f"another version (format {found!r})"
        raise _Refused(f"written by {version} of the pipeline; this one reads model files of format {FORMAT}")
    try:
        _SavedFile.model_validate(saved)
        provenance = SavedModel.model_validate(saved)
        if not provenance.is_table:
            provenance.image_preprocessing()
        if provenance.arch not in ARCH_ARGS:
            raise _Refused(f"not a valid model file (arch: unknown architecture {provenance.arch!r})")
        args = ARCH_ARGS[provenance.arch].model_validate(provenance.arch_args)
    except ValidationError as exc:
        raise _Refused(f"not a valid model file ({problems(exc, '')})") from None
    except PipelineError as exc:
        raise _Refused(f"not a valid model file ({exc})") from None
    try:
        model = build_model(
            provenance.arch,
            args,
            in_channels=provenance.channels,
            size=provenance.size,
            num_classes=len(provenance.classes),
        )
        model.load_state_dict(saved["state_dict"])
    except (PipelineError, RuntimeError, TypeError, ValueError) as exc:
        said = " ".join(str(exc).split()) or type(exc).__name__  # torch's message runs over several lines
        raise _Refused(f"its weights do not fit its architecture ({said[:300]})") from None
    return model.eval(), provenance


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True)


class SavedNormalization(_Strict):
    """The training split's statistics the inputs are standardised with (`normalize` false: not standardised)."""

    normalize: bool
    mean: list[float]
    std: list[float]


class SavedModel(_Strict):
    """A model file's provenance, the keys of this format with their types (others are allowed); the weights are
    not part of it (`load_model` gives them as the rebuilt model)."""

    model: str
    arch: str
    arch_args: dict[str, Any]
    dataset: str
    classes: list[str]
    size: int
    channels: int
    normalization: SavedNormalization
    preprocessing: dict[str, Any] | None
    train: dict[str, Any]
    aug: dict[str, Any]
    seed: int
    epoch: int
    kept: str
    stopped_at: int | None = None
    backbone: dict[str, list[float]] | None = None

    @property
    def is_table(self) -> bool:
        """Trained on a table's feature rows (no image preprocessing recorded), not on images."""
        return self.preprocessing is None

    def image_preprocessing(self) -> Preprocessing:
        """How a new image becomes this model's input (a model trained on a table has none: check `is_table`)."""
        if self.preprocessing is None:
            raise PipelineError(f"{self.model} was trained on a table of features ({self.dataset}), not on images")
        return Preprocessing.from_dict(self.preprocessing)

    def non_default_params(self) -> list[tuple[str, Any, Any]]:
        """(key, value, default) of every resolved param that differs from the code's default: `train.*` against
        TrainParams, `aug.*` against AugParams, `arch.*` (the architecture's own args) against its params class."""
        defaults = {
            "train": TrainParams().model_dump(mode="json"),
            "aug": AugParams().model_dump(mode="json"),
            "arch": ARCH_ARGS[self.arch]().model_dump(mode="json"),
        }
        values = {"train": self.train, "aug": self.aug, "arch": self.arch_args}
        return [
            (f"{group}.{key}", value, defaults[group].get(key))
            for group, given in values.items()
            for key, value in given.items()
            if value != defaults[group].get(key)
        ]


class _SavedFile(SavedModel):
    """The whole file: the provenance and the weights."""

    state_dict: dict[str, Any]
