"""The architectures of the recipe models: airbench94's CIFAR-10 net and ResNet-9 for photos, both for
training from scratch on a CPU budget."""

from itertools import pairwise

import torch
from torch import nn

from pipeline.config.archs import AirbenchArgs, SmallResNetArgs
from pipeline.models.layers import require_size
from pipeline.models.registry import register


@register("airbench")
def airbench(args: AirbenchArgs, *, in_channels: int, size: int, outputs: int) -> nn.Module:
    """airbench94's net: 2x2 stem + GELU, three conv groups, global maxpool, bias-free linear head, logits scaled."""
    require_size("airbench", size, 16)
    widths = (args.stem, *args.widths)
    groups = [_conv_group(c_in, c_out) for c_in, c_out in pairwise(widths)]
    head = nn.Linear(widths[-1], outputs, bias=False)
    return nn.Sequential(
        nn.Conv2d(in_channels, args.stem, 2, bias=True),
        nn.GELU(),
        *groups,
        nn.AdaptiveMaxPool2d(1),
        nn.Flatten(),
        head,
        _Scale(args.scale),
    )


def _conv_group(c_in: int, c_out: int) -> nn.Sequential:
    """conv3x3, maxpool 2x2, BatchNorm, GELU, conv3x3, BatchNorm, GELU, as airbench's ConvGroup."""
    return nn.Sequential(
        _identity_conv(c_in, c_out), nn.MaxPool2d(2), _shift_only_norm(c_out), nn.GELU(),
        _identity_conv(c_out, c_out), _shift_only_norm(c_out), nn.GELU(),
    )


def _identity_conv(c_in: int, c_out: int) -> nn.Conv2d:
    """A bias-free 3x3 conv initialised as PyTorch does, then as an identity on its first `c_in` filters (dirac)."""
    conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
    with torch.no_grad():
        nn.init.dirac_(conv.weight[: min(c_in, c_out)])
    return conv


def _shift_only_norm(channels: int) -> nn.BatchNorm2d:
    """BatchNorm whose scale is fixed at 1 and only its shift trains (airbench's)."""
    norm = nn.BatchNorm2d(channels, eps=1e-12)
    norm.weight.requires_grad_(False)
    return norm


class _Scale(nn.Module):
    """Multiplies its input by a constant: airbench's temperature on the logits."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs * self.factor


@register("small_resnet")
def small_resnet(args: SmallResNetArgs, *, in_channels: int, size: int, outputs: int) -> nn.Module:
    """ResNet-9: prep conv (and maxpool), conv-pool + residual, conv-pool, conv-pool + residual, global maxpool,
    bias-free linear, logits scaled."""
    prep, first, second, third = args.widths
    require_size("small_resnet", size, 2 ** (3 + args.stem_pool))
    return nn.Sequential(
        *_conv_bn_relu(in_channels, prep),
        *([nn.MaxPool2d(2)] if args.stem_pool else []),
        *_conv_bn_relu(prep, first), nn.MaxPool2d(2), _Residual(first),
        *_conv_bn_relu(first, second), nn.MaxPool2d(2),
        *_conv_bn_relu(second, third), nn.MaxPool2d(2), _Residual(third),
        nn.AdaptiveMaxPool2d(1),
        nn.Flatten(),
        nn.Linear(third, outputs, bias=False),
        _Scale(args.scale),
    )


def _conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    """A bias-free 3x3 same-size conv, BatchNorm, ReLU."""
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class _Residual(nn.Module):
    """x + two conv-BatchNorm-ReLU layers of x, at the same width (ResNet-9's residual block)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*_conv_bn_relu(channels, channels), *_conv_bn_relu(channels, channels))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs + self.body(inputs)
