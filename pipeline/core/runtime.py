"""Torch plumbing shared by train and evaluate: device choice, seeding, batching in-memory arrays, prediction."""

import contextlib
import functools
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import nn

from pipeline.core.errors import PipelineError


@dataclass(frozen=True)
class Normalization:
    """Per-channel mean and std (on the [0, 1] scale) that inputs are standardised with."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def from_stats(cls, stats: "Statistics") -> "Normalization | None":
        """The training-split statistics of a dataset's meta.json, a model file or an image preprocessing, if they
        are to be used."""
        return cls(tuple(stats.mean), tuple(stats.std)) if stats.normalize else None


class Statistics(Protocol):
    """What records a training split's statistics and whether inputs are standardised with them."""

    normalize: bool
    mean: Sequence[float]
    std: Sequence[float]


def pick_device(name: str, key: str = "train.device") -> torch.device:
    """`auto` is CUDA when present, else the CPU; asking for CUDA on a machine without it is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise PipelineError(f"{key}: {name!r} asked for, but CUDA is not available here; use auto or cpu")
    return torch.device(name)


def place(model: nn.Module, device: torch.device) -> nn.Module:
    """The model on the device with its conv kernels channels-last, the layout of our NHWC-born batches: convs
    then skip a layout conversion and run about a quarter faster on the CPU."""
    return model.to(device, memory_format=torch.channels_last)


def seed_everything(seed: int, device: torch.device) -> None:
    """Seed Python, NumPy and torch; on the CPU also insist on deterministic kernels, so reruns match exactly."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)
    else:
        torch.backends.cudnn.benchmark = True


def derived_seed(*parts: int) -> int:
    """A seed drawn from `parts` (run seed, epoch, rank, ...) alone, so whatever uses it repeats exactly."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def batches(
    images: np.ndarray, labels: np.ndarray, batch_size: int, normalization: Normalization | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (float NCHW, int64 labels) batches in order: what evaluation reads (training has `pipeline.training.feed`)."""
    for start in range(0, len(labels), batch_size):
        end = start + batch_size
        yield to_tensor(images[start:end], normalization), torch.from_numpy(labels[start:end])


def batch_count(samples: int, batch_size: int) -> int:
    """How many batches `batches` yields for `samples` samples."""
    return -(-samples // batch_size)


def to_tensor(inputs: np.ndarray, normalization: Normalization | None = None) -> torch.Tensor:
    """uint8 NHWC images (or float table rows) from host memory as model inputs; see `model_input`. A read-only
    array (a slice of a memory-mapped split) is copied first: torch tensors need writable memory."""
    owned = inputs if inputs.flags.writeable else np.array(inputs)
    return model_input(torch.from_numpy(owned), normalization)


def model_input(raw: torch.Tensor, normalization: Normalization | None = None) -> torch.Tensor:
    """uint8 NHWC images to float NCHW in [0, 1], or float table rows (N, features) as they are; standardised per
    channel or feature when a normalization is given. Runs where `raw` is, so a batch crosses to the GPU as uint8."""
    if raw.ndim == 2:
        tensor = raw.to(torch.float32, copy=True)  # owned, as the image branch's is
    else:
        tensor = raw.permute(0, 3, 1, 2).float().div_(255)
    if normalization is None:
        return tensor
    mean, std = _statistics(normalization, tensor.device, tensor.ndim)
    return tensor.sub_(mean).div_(std)


@functools.cache
def _statistics(normalization: Normalization, device: torch.device, ndim: int) -> tuple[torch.Tensor, torch.Tensor]:
    shape = (1, -1) + (1,) * (ndim - 2)
    return tuple(torch.tensor(values, device=device).view(shape) for values in (normalization.mean, normalization.std))


def mixed_precision(device: torch.device, wanted: bool = True) -> contextlib.AbstractContextManager:
    """bf16 autocast on a CUDA device that supports it (when `wanted`); elsewhere full precision."""
    if wanted and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
