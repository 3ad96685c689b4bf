"""Torch plumbing shared by train and evaluate: device choice, seeding, batching in-memory arrays, prediction."""

import random
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn

from pipeline.errors import PipelineError

Augment = Callable[..., dict]


def pick_device(name: str, key: str = "train.device") -> torch.device:
    """`auto` is CUDA when present, else the CPU; asking for CUDA on a machine without it is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise PipelineError(f"{key}: {name!r} asked for, but CUDA is not available here; use auto or cpu")
    return torch.device(name)


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
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (float NCHW in [0, 1], int64 labels) batches; shuffled when a generator is given, augmented if asked."""
    order = torch.randperm(len(labels), generator=generator).numpy() if generator else np.arange(len(labels))
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        batch = images[index]
        if augment is not None:
            batch = np.stack([augment(image=image)["image"].reshape(image.shape) for image in batch])
        yield to_tensor(batch), torch.from_numpy(labels[index])


def batch_count(samples: int, batch_size: int) -> int:
    """How many batches `batches` yields for `samples` samples."""
    return -(-samples // batch_size)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC images to float NCHW in [0, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255)


@torch.no_grad()
def predict(model: nn.Module, images: np.ndarray, batch_size: int, device: torch.device) -> torch.Tensor:
    """The model's logits for every image, in eval mode, on the CPU."""
    model.eval()
    dummy = np.zeros(len(images), np.int64)
    outputs = [model(x.to(device)).float().cpu() for x, _ in batches(images, dummy, batch_size)]
    return torch.cat(outputs)
