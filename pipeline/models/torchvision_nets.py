"""torchvision's VGG16 and ResNet-18, adapted to any input size and class count; ImageNet weights optional."""

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import torch
from torch import nn

from pipeline.config.archs import FineTunable, ResNet18Args, Vgg16Args
from pipeline.core.errors import PipelineError
from pipeline.models.layers import dropout_layers, require_size
from pipeline.models.pretrained import Upstream
from pipeline.models.registry import Pretrained, mark_features, register, train_at

if TYPE_CHECKING:  # torchvision is imported where a torchvision model is built: importing it takes seconds
    from torchvision.models import WeightsEnum

IMAGENET_CHANNELS = 3


def _vgg16_weights(args: Vgg16Args) -> "WeightsEnum":
    """The ImageNet weights of VGG16 (VGG16-BN with `batchnorm`)."""
    from torchvision.models import VGG16_BN_Weights, VGG16_Weights

    return VGG16_BN_Weights.IMAGENET1K_V1 if args.batchnorm else VGG16_Weights.IMAGENET1K_V1


def _vgg16_reference(args: Vgg16Args) -> nn.Module:
    """The published VGG16 (or VGG16-BN), on the meta device: the shapes its weights have."""
    from torchvision.models import vgg16, vgg16_bn

    with torch.device("meta"):
        return (vgg16_bn if args.batchnorm else vgg16)(weights=None)


VGG16_PRETRAINED = Pretrained(
    upstream=lambda args: _upstream(_vgg16_weights(args)),
    reference=_vgg16_reference,
    fresh=lambda args: ("classifier.",),  # the conv features are ImageNet's, the classifier our own
)


@register("vgg16", pretrained=VGG16_PRETRAINED)
def vgg16_net(args: Vgg16Args, *, in_channels: int, size: int, outputs: int) -> nn.Module:
    """torchvision VGG16 (VGG16-BN with `batchnorm`) with a small head: features pooled to 512 values (1x1 at
    32x32), then Linear(512, head), ReLU, Dropout, Linear(head, outputs). `freeze` fixes the features; otherwise
    they train at `features_lr` when given. ImageNet weights (`pretrained`) fill the features (`VGG16_PRETRAINED`)."""
    require_size("vgg16", size, 32)
    _require_imagenet_channels("vgg16", args, in_channels)
    model = _vgg16_without_classifier(args.batchnorm)
    if in_channels != IMAGENET_CHANNELS:
        model.features[0] = _fresh_conv(in_channels, 64, kernel=3, stride=1, padding=1, bias=True)
    model.avgpool = nn.AdaptiveAvgPool2d(1)
    model.classifier = nn.Sequential(
        nn.Linear(512, args.head), nn.ReLU(), *dropout_layers(args.dropout), nn.Linear(args.head, outputs)
    )
    if args.freeze:
        model.features.requires_grad_(False)
    _mark_features(args, model.features)
    return model


def _mark_features(args: FineTunable, *features: nn.Module) -> None:
    """Mark the features for `fine_tune`, and have them train at `features_lr` when given."""
    mark_features(*features)
    if args.features_lr is not None:
        for module in features:
            train_at(module, args.features_lr)


def _require_imagenet_channels(arch: str, args: Vgg16Args | ResNet18Args, in_channels: int) -> None:
    """ImageNet weights take RGB images: a pretrained model of other input is an error naming the keys to change."""
    if args.pretrained and in_channels != IMAGENET_CHANNELS:
        raise PipelineError(
            f"{arch} with pretrained ImageNet weights needs RGB images, got {in_channels} channel(s); "
            "set preprocess.<dataset>.color: rgb, or pretrained: false to train from scratch"
        )


def _vgg16_without_classifier(batchnorm: bool) -> nn.Module:
    """torchvision VGG16 (or VGG16-BN) whose ImageNet classifier (120M parameters, replaced anyway) never gets
    memory or initialisation, which would take seconds: built on the meta device, then only the conv features are
    placed on the CPU and initialised as torchvision does."""
    from torchvision.models import vgg16, vgg16_bn

    with torch.device("meta"):
        model = (vgg16_bn if batchnorm else vgg16)(weights=None)
    model.features.to_empty(device="cpu")
    for layer in model.features:
        if isinstance(layer, nn.Conv2d):
            _init_conv(layer)
        elif isinstance(layer, nn.BatchNorm2d):
            layer.reset_parameters()
    return model


def _resnet18_reference(args: ResNet18Args) -> nn.Module:
    """The published ResNet-18, on the meta device: the shapes its weights have."""
    from torchvision.models import resnet18

    with torch.device("meta"):
        return resnet18(weights=None)


def _resnet18_upstream(args: ResNet18Args) -> Upstream:
    """ResNet-18's ImageNet weights."""
    from torchvision.models import ResNet18_Weights

    return _upstream(ResNet18_Weights.IMAGENET1K_V1)


RESNET18_PRETRAINED = Pretrained(
    upstream=_resnet18_upstream,
    reference=_resnet18_reference,
    # the head fc is new; with small_input the 3x3 stem conv1 starts fresh too (ImageNet's is a 7x7 conv)
    fresh=lambda args: ("fc.", "conv1.") if args.small_input else ("fc.",),
)


@register("resnet18", pretrained=RESNET18_PRETRAINED)
def resnet18_net(args: ResNet18Args, *, in_channels: int, size: int, outputs: int) -> nn.Module:
    """torchvision ResNet-18; its features are every layer but the head `fc` (a new Linear(512, outputs)), trained
    at `features_lr` when given. `small_input` swaps the ImageNet stem (7x7 stride-2 conv, maxpool), which would
    shrink a 32x32 image to 8x8 at once, for a 3x3 stride-1 conv and no maxpool. ImageNet weights (`pretrained`)
    fill all but the new parts (`RESNET18_PRETRAINED`)."""
    from torchvision.models import resnet18

    _require_imagenet_channels("resnet18", args, in_channels)
    model = resnet18(weights=None, num_classes=outputs)
    if args.small_input:
        model.conv1 = _fresh_conv(in_channels, 64, kernel=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    elif in_channels != IMAGENET_CHANNELS:
        model.conv1 = _fresh_conv(in_channels, 64, kernel=7, stride=2, padding=3, bias=False)
    _mark_features(args, *(child for name, child in model.named_children() if name != "fc"))
    return model


def _fresh_conv(c_in: int, c_out: int, *, kernel: int, stride: int, padding: int, bias: bool) -> nn.Conv2d:
    """A conv to replace a torchvision stem, initialised as torchvision initialises its own."""
    return _init_conv(nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=bias))


def _init_conv(conv: nn.Conv2d) -> nn.Conv2d:
    """Initialise a conv as torchvision initialises VGG and ResNet convs: Kaiming normal (fan-out), zero bias."""
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


def _upstream(weights: "WeightsEnum") -> Upstream:
    """A torchvision weights enum as the weights stage fetches it: from torch's cache under $TORCH_HOME, or
    downloaded there once (its hash checked)."""
    return Upstream(
        source={"from": "torchvision", "name": str(weights), "url": weights.url},
        fetch=lambda: weights.get_state_dict(progress=False, check_hash=True),
        by_hand=str(_weights_path(weights)),
    )


def _weights_path(weights: "WeightsEnum") -> Path:
    """Where torch.hub looks for (and caches) a weights file: $TORCH_HOME/hub/checkpoints/<file of the URL>."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name
