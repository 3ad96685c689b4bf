"""The architectures of the recipe models: airbench94's CIFAR-10 net and a small ResNet for photos, both for
training from scratch on a CPU budget."""

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
    groups = [_conv_group(c_in, c_out) for c_in, c_out in zip(widths[:-1], widths[1:], strict=True)]
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
    """3x3 stride-2 stem, `depth` basic blocks per width (stride 2 on entering each width after the first),
    global average pool, dropout, linear."""
    require_size("small_resnet", size, 2 ** len(args.widths))
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, args.widths[0], 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(args.widths[0]),
        nn.ReLU(inplace=True),
    ]
    c_in = args.widths[0]
    for index, width in enumerate(args.widths):
        for block in range(args.depth):
            layers.append(_BasicBlock(c_in, width, stride=2 if index and not block else 1))
            c_in = width
    return nn.Sequential(
        *layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(args.dropout), nn.Linear(c_in, outputs)
    )


class _BasicBlock(nn.Module):
    """ResNet's basic block: two 3x3 conv-BatchNorm layers added to the input (a 1x1 conv where the shape changes);
    the last BatchNorm starts at zero, so each block starts as an identity (Goyal et al.)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        last_norm = nn.BatchNorm2d(c_out)
        nn.init.zeros_(last_norm.weight)
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), last_norm,
        )
        changes = stride != 1 or c_in != c_out
        self.skip = (
            nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))
            if changes else nn.Identity()
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(inputs) + self.skip(inputs))
