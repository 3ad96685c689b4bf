"""Model registry: architecture name -> factory. Factories take their validated args (see `params.ARCH_ARGS`).

A two-class model has one output (a logit, read through a sigmoid, trained with binary cross-entropy); a model of
more classes has one logit per class (softmax, cross-entropy). `loss` and `probabilities` hide the difference.
"""

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.errors import PipelineError
from pipeline.params import ARCH_ARGS, Block, CatsDogsCnnArgs

Factory = Callable[..., nn.Module]
ARCHS: dict[str, Factory] = {}


def register(name: str) -> Callable[[Factory], Factory]:
    """Register a factory under an architecture name; a name must have args in `ARCH_ARGS` and be unique."""

    def decorate(factory: Factory) -> Factory:
        if name in ARCHS:
            raise ValueError(f"architecture {name!r} is registered twice")
        if name not in ARCH_ARGS:
            raise ValueError(f"architecture {name!r} has no args schema in pipeline.params.ARCH_ARGS")
        ARCHS[name] = factory
        return factory

    return decorate


def build_model(arch: str, args: Block, *, in_channels: int, size: int, num_classes: int) -> nn.Module:
    """Build an architecture for inputs of (in_channels, size, size) and `num_classes` classes."""
    if arch not in ARCHS:
        raise KeyError(f"unknown architecture {arch!r}; known: {', '.join(ARCHS)}")
    return ARCHS[arch](args, in_channels=in_channels, size=size, outputs=output_count(num_classes))


def output_count(num_classes: int) -> int:
    """One sigmoid output for two classes, else one logit per class."""
    return 1 if num_classes == 2 else num_classes


def loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy (one output) or cross-entropy (one logit per class)."""
    if logits.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(logits[:, 0], labels.to(logits.dtype))
    return F.cross_entropy(logits, labels)


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Class probabilities (N, classes) for either kind of output."""
    if logits.shape[1] == 1:
        positive = torch.sigmoid(logits)
        return torch.cat([1 - positive, positive], dim=1)
    return torch.softmax(logits, dim=1)


def _min_size(blocks: int) -> int:
    """The smallest image side that still has a pixel left after `blocks` 3x3-conv + 2x2-maxpool blocks."""
    side = 1
    for _ in range(blocks):
        side = 2 * side + 2
    return side


def _flat_size(features: nn.Module, in_channels: int, size: int) -> int:
    with torch.no_grad():
        return features(torch.zeros(1, in_channels, size, size)).numel()


@register("catsdogs_cnn")
def catsdogs_cnn(args: CatsDogsCnnArgs, *, in_channels: int, size: int, outputs: int) -> nn.Module:
    """conv32-pool-dropout, conv64-pool-dropout, conv64-pool-dropout, dense, output: the classic Keras convnet."""
    widths = (in_channels, 32, 64, 64)
    smallest = _min_size(len(widths) - 1)
    if size < smallest:
        raise PipelineError(
            f"architecture 'catsdogs_cnn' needs images of at least {smallest} pixels a side, got {size}; "
            "raise preprocess.<dataset>.size"
        )
    layers: list[nn.Module] = []
    for c_in, c_out, rate in zip(widths[:-1], widths[1:], args.dropout, strict=True):
        layers += [nn.Conv2d(c_in, c_out, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(rate)]
    features = nn.Sequential(*layers)
    return nn.Sequential(
        features,
        nn.Flatten(),
        nn.Linear(_flat_size(features, in_channels, size), args.dense),
        nn.ReLU(),
        nn.Linear(args.dense, outputs),
    )
