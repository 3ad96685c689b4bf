"""fastai's `fine_tune` (`fine_tune: {freeze_epochs: N}` of vgg16 and resnet18): for the first N epochs only the new
head trains, then the features (the submodules the architecture marks, `registry.features_of`) train too.

The optimizer holds every parameter from the start, the features at `features_lr`: a frozen parameter
(`requires_grad` off) gets no gradient, so the optimizer skips it (no step, no weight decay, no momentum), and
unfreezing needs no new optimizer; a resumed run freezes or unfreezes by its epoch number, so a checkpoint taken
mid-freeze resumes as the uninterrupted run goes on. While frozen, the features' BatchNorm layers run in eval mode
(as fastai's frozen layers do): they normalise with their running statistics (ImageNet's, for pretrained weights)
and do not update them, so the head learns on the features as they will be. Under torchrun the frozen parameters
would leave DistributedDataParallel waiting for their gradients: fine_tune trains in one process only.
"""

import torch.distributed as dist
from torch import nn

from pipeline.config.base import Block
from pipeline.core.errors import PipelineError
from pipeline.models.registry import BATCHNORM, features_of

_FROZEN = "pipeline_frozen"  # set on a feature BatchNorm layer: whether to hold it in eval mode


def fine_tune_epoch(model: nn.Module, args: Block, epoch: int) -> None:
    """Before training epoch `epoch` (from 1): freeze the features for the first `fine_tune.freeze_epochs` epochs
    and unfreeze them after; nothing for a model whose arch args have no `fine_tune` (or it is off)."""
    plan = getattr(args, "fine_tune", None)
    if plan is None:
        return
    if dist.is_initialized() and dist.get_world_size() > 1:
        raise PipelineError("fine_tune: trains in one process only, not under torchrun (--nproc / --nnodes)")
    frozen = epoch <= plan.freeze_epochs
    for features in features_of(model):
        features.requires_grad_(not frozen)
        for layer in features.modules():
            if isinstance(layer, BATCHNORM):
                _hold_in_eval(layer, frozen)


def _hold_in_eval(layer: nn.Module, frozen: bool) -> None:
    """Keep a BatchNorm layer in eval mode while `frozen`, even though the loop puts the model in train mode each
    epoch: a forward pre-hook, registered once, switches it to eval mode before each forward pass while frozen."""
    if not hasattr(layer, _FROZEN):
        layer.register_forward_pre_hook(_eval_while_frozen)
    setattr(layer, _FROZEN, frozen)


def _eval_while_frozen(layer: nn.Module, inputs: tuple) -> None:
    if getattr(layer, _FROZEN):
        layer.eval()
