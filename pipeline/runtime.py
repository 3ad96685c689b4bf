"""Torch plumbing shared by train and evaluate: device choice, seeding, batching in-memory arrays, prediction."""

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pipeline.errors import PipelineError

Augment = Callable[..., dict]


@dataclass(frozen=True)
class Normalization:
    """Per-channel mean and std (on the [0, 1] scale) that inputs are standardised with."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def from_meta(cls, meta: dict) -> "Normalization | None":
        """The training-split statistics of preprocess's meta.json (or a model file), if they are to be used."""
        return cls(tuple(meta["mean"]), tuple(meta["std"])) if meta.get("normalize") else None


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


def batches(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    augment: Augment | None = None,
    normalization: Normalization | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (float NCHW, int64 labels) batches; shuffled when a generator is given, augmented if asked."""
    order = torch.randperm(len(labels), generator=generator).numpy() if generator else np.arange(len(labels))
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        batch = images[index]
        if augment is not None:
            batch = np.stack([augment(image=image)["image"].reshape(image.shape) for image in batch])
        yield to_tensor(batch, normalization), torch.from_numpy(labels[index])


def batch_count(samples: int, batch_size: int) -> int:
    """How many batches `batches` yields for `samples` samples."""
    return -(-samples // batch_size)


def to_tensor(inputs: np.ndarray, normalization: Normalization | None = None) -> torch.Tensor:
    """uint8 NHWC images to float NCHW in [0, 1], or float table rows (N, features) as they are; standardised per
    channel or feature when a normalization is given."""
    if inputs.ndim == 2:
        tensor = torch.from_numpy(inputs).to(torch.float32, copy=True)  # owned, as the image branch's is
    else:
        tensor = torch.from_numpy(inputs).permute(0, 3, 1, 2).float().div_(255)
    if normalization is None:
        return tensor
    shape = (1, -1) + (1,) * (tensor.ndim - 2)
    mean = torch.tensor(normalization.mean).view(shape)
    std = torch.tensor(normalization.std).view(shape)
    return tensor.sub_(mean).div_(std)


@torch.no_grad()
def predict(
    model: nn.Module,
    images: np.ndarray,
    batch_size: int,
    device: torch.device,
    normalization: Normalization | None = None,
) -> torch.Tensor:
    """The model's logits for every image, in eval mode, on the CPU."""
    model.eval()
    dummy = np.zeros(len(images), np.int64)
    data = batches(images, dummy, batch_size, normalization=normalization)
    outputs = [model(x.to(device)).float().cpu() for x, _ in data]
    return torch.cat(outputs)
