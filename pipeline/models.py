"""Model registry: architecture name -> factory. Factories take their validated args (see `params.ARCH_ARGS`).

A two-class model has one output (a logit, read through a sigmoid, trained with binary cross-entropy); a model of
more classes has one logit per class (softmax, cross-entropy). `loss` and `probabilities` hide the difference.

An architecture with pretrained weights registers a loader beside its factory; `build_model` runs it only when
asked, so rebuilding a saved model never downloads. A factory may give a submodule its own learning rate
(`_train_at`); `parameter_groups` turns that into optimizer groups.
"""

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.errors import PipelineError
from pipeline.params import (
    ARCH_ARGS,
    BatchNormArgs,
    Block,
    CatsDogsCnnArgs,
    CifarCnnArgs,
    MlpArgs,
    ResNet18Args,
    Vgg16Args,
)

if TYPE_CHECKING:  # torchvision is imported where a torchvision model is built: importing it takes seconds
    from torchvision.models import WeightsEnum

Factory = Callable[..., nn.Module]
WeightsLoader = Callable[[nn.Module, Any], None]
ARCHS: dict[str, Factory] = {}
PRETRAINED: dict[str, WeightsLoader] = {}
_GROUP_LR = "pipeline_group_lr"
IMAGENET_CHANNELS = 3
BATCHNORM = nn.modules.batchnorm._BatchNorm  # the base of BatchNorm1d/2d/3d


def register(name: str, *, weights: WeightsLoader | None = None) -> Callable[[Factory], Factory]:
    """Register a factory under an architecture name; a name must have args in `ARCH_ARGS` and be unique.

    `weights(model, args)` loads pretrained weights into a freshly built model when its args ask for them.
    """

    def decorate(factory: Factory) -> Factory:
        if name in ARCHS:
            raise ValueError(f"architecture {name!r} is registered twice")
        if name not in ARCH_ARGS:
            raise ValueError(f"architecture {name!r} has no args schema in pipeline.params.ARCH_ARGS")
        ARCHS[name] = factory
        if weights is not None:
            PRETRAINED[name] = weights
        return factory

    return decorate


def build_model(
    arch: str, args: Block, *, in_channels: int, size: int, num_classes: int, load_weights: bool = True
) -> nn.Module:
    """Build an architecture for inputs of (in_channels, size, size) and `num_classes` classes.

    `load_weights=False` skips pretrained weights (they may need a download): for a model whose saved
    state_dict will replace them anyway.
    """
    if arch not in ARCHS:
        raise KeyError(f"unknown architecture {arch!r}; known: {', '.join(ARCHS)}")
    model = ARCHS[arch](args, in_channels=in_channels, size=size, outputs=output_count(num_classes))
    if load_weights and arch in PRETRAINED:
        PRETRAINED[arch](model, args)
    if isinstance(args, BatchNormArgs):
        set_bn_momentum(model, args.bn_momentum)
    return model


def set_bn_momentum(model: nn.Module, kept: float) -> None:
    """Keep `kept` of every BatchNorm layer's running statistics at each training step (PyTorch: 1 - kept)."""
    for module in model.modules():
        if isinstance(module, BATCHNORM):
            module.momentum = 1 - kept


def has_batchnorm(model: nn.Module) -> bool:
    """Whether the model has BatchNorm layers, whose train and eval modes differ."""
    return any(isinstance(module, BATCHNORM) for module in model.modules())


def parameter_groups(model: nn.Module, lr: float) -> list[dict[str, Any]]:
    """Optimizer parameter groups: the trainable parameters of each submodule its factory gave its own learning
    rate, in a group at that rate, then all other trainable parameters in a last group at `lr` (the rate train
    logs). Frozen parameters are left out."""
    groups, claimed = [], set()
    for module in model.modules():
        if hasattr(module, _GROUP_LR):
            groups.append({"params": _trainable(module, claimed), "lr": getattr(module, _GROUP_LR)})
    groups.append({"params": _trainable(model, claimed), "lr": lr})
    return [group for group in groups if group["params"]]


def _trainable(module: nn.Module, claimed: set[int]) -> list[nn.Parameter]:
    """The module's trainable parameters not yet in a group; marks them as taken."""
    params = [p for p in module.parameters() if p.requires_grad and id(p) not in claimed]
    claimed.update(id(p) for p in params)
    return params


def _train_at(module: nn.Module, lr: float) -> None:
    """Have `parameter_groups` put this submodule's parameters in a group of their own at `lr`."""
    setattr(module, _GROUP_LR, lr)


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


def _require_size(arch: str, size: int, smallest: int) -> None:
    """Refuse images too small to keep a pixel through the architecture's pooling."""
    if size < smallest:
        raise PipelineError(
            f"architecture {arch!r} needs images of at least {smallest} pixels a side, got {size}; "
            "raise preprocess.<dataset>.size"
        )


def _flat_size(features: nn.Module, in_channels: int, size: int) -> int:
    """Features per image out of `features`, by a dry run in eval mode (BatchNorm statistics stay untouched)."""
    features.eval()
    with torch.no_grad():
        count = features(torch.zeros(1, in_channels, size, size)).numel()
    features.train()
    return count


def _dropout(rate: float) -> list[nn.Module]:
    """A Dropout layer, or none for a rate of 0."""
    return [nn.Dropout(rate)] if rate > 0 else []


@register("catsdogs_cnn")
def catsdogs_cnn(args: CatsDogsCnnArgs, *, in_channels: int, size: int, outputs: int) -> nn.Module:
    """conv32-pool-dropout, conv64-pool-dropout, conv64-pool-dropout, dense, output: the classic Keras convnet."""
    widths = (in_channels, 32, 64, 64)
    _require_size("catsdogs_cnn", size, _min_size(len(widths) - 1))
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
    _require_size("cifar_cnn", size, 2 ** len(args.widths))
    norm = args.batchnorm
    layers: list[nn.Module] = []
    for c_in, c_out, rate in zip((in_channels, *args.widths[:-1]), args.widths, args.dropout[:-1], strict=True):
        layers += [*_conv_relu(c_in, c_out, norm), *_conv_relu(c_out, c_out, norm), nn.MaxPool2d(2), *_dropout(rate)]
    features = nn.Sequential(*layers)
    dense = nn.Linear(_flat_size(features, in_channels, size), args.dense, bias=not norm)
    return nn.Sequential(
        features,
        nn.Flatten(),
        *_normed_relu(dense, nn.BatchNorm1d(args.dense) if norm else None),
        *_dropout(args.dropout[-1]),
        nn.Linear(args.dense, outputs),
    )


def _conv_relu(c_in: int, c_out: int, batchnorm: bool) -> list[nn.Module]:
    """A 3x3 same-size conv (no bias when BatchNorm follows), optional BatchNorm, ReLU."""
    conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=not batchnorm)
    return _normed_relu(conv, nn.BatchNorm2d(c_out) if batchnorm else None)


def _normed_relu(layer: nn.Module, norm: nn.Module | None) -> list[nn.Module]:
    """The layer, its BatchNorm if any, then ReLU."""
    return [layer, *([norm] if norm is not None else []), nn.ReLU()]


def _vgg16_imagenet(model: nn.Module, args: Vgg16Args) -> None:
    """Load the ImageNet weights of the conv features when `pretrained` (the classifier is our own)."""
    from torchvision.models import VGG16_BN_Weights, VGG16_Weights

    if args.pretrained:
        state = _fetch(VGG16_BN_Weights.IMAGENET1K_V1 if args.batchnorm else VGG16_Weights.IMAGENET1K_V1)
        model.features.load_state_dict(_part_of(state, "features"))


@register("vgg16", weights=_vgg16_imagenet)
def vgg16_net(args: Vgg16Args, *, in_channels: int, size: int, outputs: int) -> nn.Module:
    """torchvision VGG16 (VGG16-BN with `batchnorm`) with a small head: features pooled to 512 values (1x1 at
    32x32), then Linear(512, head), ReLU, Dropout, Linear(head, outputs). `freeze` fixes the features; otherwise
    they train at `features_lr` when given. ImageNet weights (`pretrained`) are loaded by `_vgg16_imagenet`."""
    _require_size("vgg16", size, 32)
    if args.pretrained and in_channels != IMAGENET_CHANNELS:
        raise PipelineError(
            f"vgg16 with pretrained ImageNet weights needs RGB images, got {in_channels} channel(s); "
            "set preprocess.<dataset>.color: rgb, or pretrained: false to train from scratch"
        )
    model = _vgg16_without_classifier(args.batchnorm)
    if in_channels != IMAGENET_CHANNELS:
        model.features[0] = _fresh_conv(in_channels, 64, kernel=3, stride=1, padding=1, bias=True)
    model.avgpool = nn.AdaptiveAvgPool2d(1)
    model.classifier = nn.Sequential(
        nn.Linear(512, args.head), nn.ReLU(), *_dropout(args.dropout), nn.Linear(args.head, outputs)
    )
    if args.freeze:
        model.features.requires_grad_(False)
    elif args.features_lr is not None:
        _train_at(model.features, args.features_lr)
    return model


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


@register("resnet18")
def resnet18_net(args: ResNet18Args, *, in_channels: int, size: int, outputs: int) -> nn.Module:
    """torchvision ResNet-18 from scratch. `small_input` swaps the ImageNet stem (7x7 stride-2 conv, maxpool),
    which would shrink a 32x32 image to 8x8 at once, for a 3x3 stride-1 conv and no maxpool."""
    from torchvision.models import resnet18

    model = resnet18(weights=None, num_classes=outputs)
    if args.small_input:
        model.conv1 = _fresh_conv(in_channels, 64, kernel=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    elif in_channels != IMAGENET_CHANNELS:
        model.conv1 = _fresh_conv(in_channels, 64, kernel=7, stride=2, padding=3, bias=False)
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


def _part_of(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of a state dict under one submodule, named relative to it."""
    return {key.removeprefix(f"{prefix}."): value for key, value in state.items() if key.startswith(f"{prefix}.")}


def _fetch(weights: "WeightsEnum") -> dict[str, torch.Tensor]:
    """A torchvision weights' state dict, from its cache under $TORCH_HOME or downloaded there once.

    Without a network the error names the file to put in place by hand and the way to do without.
    """
    try:
        return weights.get_state_dict(progress=True, check_hash=True)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError; a bad hash or file is a RuntimeError
        raise PipelineError(
            f"could not get the pretrained weights {weights} ({exc}); download {weights.url} by hand to "
            f"{_weights_path(weights)}, or set its pretrained: false to train from scratch"
        ) from None


def _weights_path(weights: "WeightsEnum") -> Path:
    """Where torch.hub looks for (and caches) a weights file: $TORCH_HOME/hub/checkpoints/<file of the URL>."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name
