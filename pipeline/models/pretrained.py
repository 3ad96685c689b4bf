"""Pretrained weights as DVC keeps them: the `weights@<model>` stage fetches a model's upstream weights (or reads the
local file its `weights` key names), checks them against the published architecture and writes them into
data/weights/<model>/: the state dict as weights.safetensors (safetensors: the same tensors give the same bytes, and
reading runs no code) and weights.json naming their source and SHA-256. The train stage loads them from there,
never from the network: their hash is in dvc.lock, `dvc push` shares them, and weights that change upstream change
a dependency of train.
"""

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.config.params import ModelConfig
from pipeline.core.atomic import write_json
from pipeline.core.errors import PipelineError
from pipeline.core.paths import WEIGHTS_RECORD, WEIGHTS_STATE, Paths
from pipeline.core.torchfile import read_torch_file
from pipeline.models.calibration import file_sha256

StateDict = dict[str, torch.Tensor]
OPTIONAL = "num_batches_tracked"  # BatchNorm's step count: older checkpoints (VGG16-BN's) do not carry it


@dataclass(frozen=True)
class Upstream:
    """Published weights: their source as weights.json records it, how to fetch them, and where a copy put by hand
    is read from (for the error without a network)."""

    source: dict[str, str]
    fetch: Callable[[], StateDict]
    by_hand: str


def mismatch(expected: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor], fresh: tuple[str, ...]) -> str | None:
    """The first tensor where `state` differs from the `expected` state dict (missing, not the architecture's, or of
    another shape), keys under the `fresh` prefixes aside; None when it fits."""
    wanted = {key: list(value.shape) for key, value in expected.items() if not key.startswith(fresh)}
    given = {key: list(value.shape) for key, value in state.items() if not key.startswith(fresh)}
    for key, shape in wanted.items():
        if key not in given and not key.endswith(OPTIONAL):
            return f"tensor {key} is missing (the architecture's has shape {shape})"
        if key in given and given[key] != shape:
            return f"tensor {key} has shape {given[key]}, the architecture's {shape}"
    extra = next((key for key in given if key not in wanted), None)
    return None if extra is None else f"tensor {extra} is not in the architecture"


def load_into(model: nn.Module, state: StateDict, fresh: tuple[str, ...], origin: str) -> None:
    """Copy `state` into the model, all but the keys under `fresh` (its new parts); a tensor that does not fit is
    an error naming `origin` and the tensor."""
    problem = mismatch(model.state_dict(), state, fresh)
    if problem:
        raise PipelineError(f"{origin}: the pretrained weights do not fit the model: {problem}")
    model.load_state_dict({key: value for key, value in state.items() if not key.startswith(fresh)}, strict=False)


def read_local_weights(path: Path, key: str) -> StateDict:
    """The state dict of a local weights file (.safetensors, else a `torch.save`d dict of tensors); a missing or
    unreadable file is an error naming the key."""
    if not path.is_file():
        raise PipelineError(f"{key}: {path} is not a file; give the path of a weights file (from the repository root)")
    if path.suffix == ".safetensors":
        return _read_safetensors(path, key)
    state = read_torch_file(path, "weights file")
    if not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise PipelineError(f"{key}: {path} is not a state dict (name -> tensor); save `model.state_dict()` to it")
    return state


def write_weights(folder: Path, state: StateDict, source: dict[str, Any]) -> dict[str, Any]:
    """Write the state dict and its record (source, file, SHA-256) into the model's weights folder; returns the
    record."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state_file = folder / WEIGHTS_STATE
    save_file({key: value.detach().contiguous().clone() for key, value in state.items()}, str(state_file))
    record = {"weights": {**source, "file": WEIGHTS_STATE, "sha256": file_sha256(state_file)}}
    write_json(folder / WEIGHTS_RECORD, record)
    return record


def stage_weights(paths: Paths, config: ModelConfig) -> StateDict | None:
    """The weights the model starts from, as its `weights@<model>` stage left them (None without `pretrained`); not
    there, or not the file the record names, is an error saying what to run."""
    if not getattr(config.arch_args, "pretrained", False):
        return None
    folder, stage = paths.weights_dir(config.name), f"weights@{config.name}"
    record_file = folder / WEIGHTS_RECORD
    record = read_record(record_file)
    if record is None or record.get("weights") is None:
        raise PipelineError(
            f"models.{config.name}: its pretrained weights are not in {folder}; run `dvc repro {stage}` (it fetches "
            f"them), or `dvc pull {stage}` on a machine without a network"
        )
    state_file = folder / WEIGHTS_STATE
    if not state_file.is_file() or file_sha256(state_file) != record["weights"]["sha256"]:
        raise PipelineError(
            f"models.{config.name}: {state_file} is not the file {record_file} records (SHA-256); run `dvc checkout "
            f"{stage}` or `dvc repro {stage}`"
        )
    return _read_safetensors(state_file, f"models.{config.name}")


def read_record(record_file: Path) -> dict[str, Any] | None:
    """A weights folder's record, or None where there is none."""
    return json.loads(record_file.read_text()) if record_file.is_file() else None


def _read_safetensors(path: Path, key: str) -> StateDict:
    """A .safetensors file's tensors; a damaged file is an error naming it and the key."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file: the remedy is the same
        raise PipelineError(f"{key}: {path} is not a readable .safetensors file ({type(exc).__name__})") from None
