"""Model registry: architecture name -> factory. Factories take their validated args (see `params.ARCH_ARGS`).

A two-class model has one output (a logit, read through a sigmoid, trained with binary cross-entropy); a model of
more classes has one logit per class (softmax, cross-entropy). `loss` and `probabilities` hide the difference.

An architecture with pretrained weights registers how it starts from them beside its factory (`Pretrained`): the
`weights@<model>` stage fetches them, and `build_model` only loads the state dict it is given, so neither training
nor rebuilding a saved model downloads anything. A factory may give a submodule its own learning rate
(`train_at`); `parameter_groups` turns that into optimizer groups. A factory that puts a new head on pretrained
features marks them (`mark_features`), for fastai's fine_tune (`pipeline.training.fine_tune`).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from pipeline.config.archs import ARCH_ARGS, BatchNormArgs
from pipeline.config.base import Block
from pipeline.core.errors import PipelineError
from pipeline.models.outputs import output_count
from pipeline.models.pretrained import StateDict, Upstream, load_into


@dataclass(frozen=True)
class Pretrained:
    """How an architecture starts from published weights, each a function of its args: `upstream`, the weights its
    args ask for; `reference`, the published architecture (on the meta device: shapes, no memory) a weights file
    must match; `fresh`, the key prefixes of the parts the model does not take from them (its new head or stem)."""

    upstream: Callable[[Any], Upstream]
    reference: Callable[[Any], nn.Module]
    fresh: Callable[[Any], tuple[str, ...]]


Factory = Callable[..., nn.Module]
ARCHS: dict[str, Factory] = {}
PRETRAINED: dict[str, Pretrained] = {}
_GROUP_LR = "pipeline_group_lr"
_FEATURES = "pipeline_features"
BATCHNORM = nn.modules.batchnorm._BatchNorm  # the base of BatchNorm1d/2d/3d


def register(name: str, *, pretrained: Pretrained | None = None) -> Callable[[Factory], Factory]:
    """Register a factory under an architecture name; a name must have args in `ARCH_ARGS` and be unique.
    `pretrained`: how the architecture starts from published weights, when it can."""

    def decorate(factory: Factory) -> Factory:
        if name in ARCHS:
            raise ValueError(f"architecture {name!r} is registered twice")
        if name not in ARCH_ARGS:
            raise ValueError(f"architecture {name!r} has no args schema in pipeline.config.params.ARCH_ARGS")
        ARCHS[name] = factory
        if pretrained is not None:
            PRETRAINED[name] = pretrained
        return factory

    return decorate


def build_model(
    arch: str, args: Block, *, in_channels: int, size: int, num_classes: int, weights: StateDict | None = None,
    origin: str = "weights",
) -> nn.Module:
    """Build an architecture for inputs of (in_channels, size, size) and `num_classes` classes, starting from the
    pretrained `weights` when given (a state dict of the published architecture; `origin` names them in an error).
    Nothing is downloaded: the `weights@<model>` stage fetches them."""
    if arch not in ARCHS:
        raise KeyError(f"unknown architecture {arch!r}; known: {', '.join(ARCHS)}")
    model = ARCHS[arch](args, in_channels=in_channels, size=size, outputs=output_count(num_classes))
    if weights is not None:
        if arch not in PRETRAINED:
            raise PipelineError(f"{origin}: architecture {arch!r} takes no pretrained weights")
        load_into(model, weights, PRETRAINED[arch].fresh(args), origin)
    if isinstance(args, BatchNormArgs):
        set_bn_momentum(model, args.bn_momentum)
    return model


def set_bn_momentum(model: nn.Module, momentum: float) -> None:
    """Give every BatchNorm layer PyTorch's `momentum`: the weight of each training batch's statistics in the
    running ones (`bn_momentum`, as it is)."""
    for module in model.modules():
        if isinstance(module, BATCHNORM):
            module.momentum = momentum


def has_batchnorm(model: nn.Module) -> bool:
    """Whether the model has BatchNorm layers, whose train and eval modes differ."""
    return any(isinstance(module, BATCHNORM) for module in model.modules())


def parameter_groups(model: nn.Module, lr: float) -> list[dict[str, Any]]:
    """Optimizer parameter groups: the trainable parameters of the submodules its factory gave their own learning
    rate, in one group per rate, then all other trainable parameters in a last group at `lr` (the rate train
    logs). Frozen parameters are left out."""
    by_rate: dict[float, list[nn.Parameter]] = {}
    claimed: set[int] = set()
    for module in model.modules():
        if hasattr(module, _GROUP_LR):
            by_rate.setdefault(getattr(module, _GROUP_LR), []).extend(_trainable(module, claimed))
    groups = [{"params": params, "lr": rate} for rate, params in by_rate.items()]
    groups.append({"params": _trainable(model, claimed), "lr": lr})
    return [group for group in groups if group["params"]]


def _trainable(module: nn.Module, claimed: set[int]) -> list[nn.Parameter]:
    """The module's trainable parameters not yet in a group; marks them as taken."""
    params = [p for p in module.parameters() if p.requires_grad and id(p) not in claimed]
    claimed.update(id(p) for p in params)
    return params


def train_at(module: nn.Module, lr: float) -> None:
    """Have `parameter_groups` put this submodule's parameters in a group of their own at `lr`."""
    setattr(module, _GROUP_LR, lr)


def mark_features(*modules: nn.Module) -> None:
    """Mark submodules as the model's features: the pretrained part under a new head, which `fine_tune` freezes
    for its first epochs."""
    for module in modules:
        setattr(module, _FEATURES, True)


def features_of(model: nn.Module) -> list[nn.Module]:
    """The submodules its factory marked as features (`mark_features`), in model order; none for most models."""
    return [module for module in model.modules() if getattr(module, _FEATURES, False)]
