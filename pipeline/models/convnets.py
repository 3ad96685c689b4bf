"""The from-scratch architectures of the classic experiments: the dogs-vs-cats convnet, the MLP, the CIFAR-10
convnet (with optional BatchNorm and dropout)."""

from torch import nn

from pipeline.config.archs import CatsDogsCnnArgs, CifarCnnArgs, MlpArgs
from pipeline.models.layers import (
    Dropout,
    dropout_layers,
    flat_size,
    min_size,
    require_size,
)
from pipeline.models.registry import register


@register("catsdogs_cnn")
def catsdogs_cnn(args: CatsDogsCnnArgs, *, in_channels: int, size: int, outputs: int) -> nn.Module:
    """conv32-pool-dropout, conv64-pool-dropout, conv64-pool-dropout, dense, output: the classic Keras convnet."""
    widths = (in_channels, 32, 64, 64)
    require_size("catsdogs_cnn", size, min_size(len(widths) - 1))
    layers: list[nn.Module] = []
    for c_in, c_out, rate in zip(widths[:-1], widths[1:], args.dropout, strict=True):
        layers += [nn.Conv2d(c_in, c_out, 3), nn.ReLU(), nn.MaxPool2d(2), Dropout(rate)]
    features = nn.Sequential(*layers)
    return nn.Sequential(
        features,
        nn.Flatten(),
        nn.Linear(flat_size(features, in_channels, size), args.dense),
        nn.ReLU(),
        nn.Linear(args.dense, outputs),
    )


@register("mlp")
def mlp(args: MlpArgs, *, in_channels: int, size: int, outputs: int) -> nn.Module:
    """Flatten, then dense layers of the hidden widths with ReLU, then the outputs: the no-convolution baseline."""
    widths = (in_channels * size * size, *args.hidden)
    layers: list[nn.Module] = [nn.Flatten()]
    for width_in, width_out in zip(widths[:-1], widths[1:], strict=True):
        layers += [nn.Linear(width_in, width_out), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(widths[-1], outputs))


@register("cifar_cnn")
def cifar_cnn(args: CifarCnnArgs, *, in_channels: int, size: int, outputs: int) -> nn.Module:
    """Three blocks of two 3x3 convs (padding 1) and a 2x2 maxpool, then dense and output. `batchnorm` adds
    BatchNorm after every conv and the dense layer; `dropout` rates follow each block and the dense layer."""
    require_size("cifar_cnn", size, 2 ** len(args.widths))
    norm = args.batchnorm
    layers: list[nn.Module] = []
    for c_in, c_out, rate in zip((in_channels, *args.widths[:-1]), args.widths, args.dropout[:-1], strict=True):
        layers += [*_conv_relu(c_in, c_out, norm), *_conv_relu(c_out, c_out, norm), nn.MaxPool2d(2), *dropout_layers(rate)]
    features = nn.Sequential(*layers)
    dense = nn.Linear(flat_size(features, in_channels, size), args.dense, bias=not norm)
    return nn.Sequential(
        features,
        nn.Flatten(),
        *_normed_relu(dense, nn.BatchNorm1d(args.dense) if norm else None),
        *dropout_layers(args.dropout[-1]),
        nn.Linear(args.dense, outputs),
    )


def _conv_relu(c_in: int, c_out: int, batchnorm: bool) -> list[nn.Module]:
    """A 3x3 same-size conv (no bias when BatchNorm follows), optional BatchNorm, ReLU."""
    conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=not batchnorm)
    return _normed_relu(conv, nn.BatchNorm2d(c_out) if batchnorm else None)


def _normed_relu(layer: nn.Module, norm: nn.Module | None) -> list[nn.Module]:
    """The layer, its BatchNorm if any, then ReLU."""
    return [layer, *([norm] if norm is not None else []), nn.ReLU()]
