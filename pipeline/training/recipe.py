"""The training recipe: what turns one batch into one update, built once per run from the model's `train.*` keys.

The optimiser (Adam or SGD) and its per-batch schedule, bf16 autocast on a GPU (`train.amp`), the loss's class
weights (`train.class_weights`) and label smoothing (`train.label_smoothing`), the `l1`/`l2` weight penalty, MixUp
and CutMix (`train.mixup`, `train.cutmix`), the weights' moving average (`train.ema`) and airbench's lookahead
(`train.lookahead_every`, pipeline/training/lookahead.py). Every command that trains
(the train stage, the audit's folds, `pipeline sanity overfit`, `pipeline lr-find`, `pipeline bench`) builds its
recipe here and steps through `pipeline.stages.train.train_step`, so each key means the same thing wherever a
model is trained.

`train.ema` keeps an exponential moving average of the weights and BatchNorm buffers (torch's `AveragedModel` with
`get_ema_multi_avg_fn`, `use_buffers=True`): after every optimisation step, average = decay * average + (1 - decay)
* weights, starting from the weights after the first step. Validation, the kept model and models/<model>.pt use it.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from pipeline.config.params import ModelConfig
from pipeline.config.training import TrainParams
from pipeline.core.errors import PipelineError
from pipeline.core.runtime import Normalization
from pipeline.data.store import SplitArrays
from pipeline.models.outputs import inverse_frequency
from pipeline.models.registry import BATCHNORM, has_batchnorm
from pipeline.training.lookahead import Lookahead
from pipeline.training.mixing import Mixer, mixer_for
from pipeline.training.schedule import initial_lr, make_scheduler


@dataclass(frozen=True)
class Penalty:
    """The `l1`/`l2` weight penalty on the given kernels (none given: nothing is penalised)."""

    kernels: list[torch.Tensor]
    l1: float = 0.0
    l2: float = 0.0

    def __call__(self, like: torch.Tensor) -> torch.Tensor:
        """The penalty now, as a scalar beside `like`."""
        return weight_penalty(self.kernels, self.l1, self.l2) if self.kernels else like.new_zeros(())


NO_PENALTY = Penalty([])


@dataclass(frozen=True, kw_only=True)
class TrainingRecipe:
    """How each training batch becomes an update: its normalisation, the optimiser and its per-batch schedule
    (None: a constant rate), mixed precision, the weight penalty, the loss's class weights and label smoothing, the
    batch mixer and the weights' moving average (None: off), and the device the figures add up on."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    normalization: Normalization | None
    device: torch.device
    amp: bool = True
    penalty: Penalty = NO_PENALTY
    class_weights: torch.Tensor | None = None
    smoothing: float = 0.0
    mixer: Mixer | None = None
    ema: AveragedModel | None = None
    lookahead: Lookahead | None = None

    def scored(self, model: nn.Module) -> nn.Module:
        """The weights a run validates, keeps and saves: the moving average's when `train.ema` is on, else `model`."""
        return model if self.ema is None else self.ema.module

    def states(self) -> dict[str, Any]:
        """The objects whose state a checkpoint keeps besides the model, by name: the optimiser, the scheduler, and
        the moving average and lookahead when on."""
        extras = {"ema": self.ema, "lookahead": self.lookahead}
        return {"optimizer": self.optimizer, "scheduler": self.scheduler,
                **{name: value for name, value in extras.items() if value is not None}}


def recipe_for(
    config: ModelConfig,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_set: SplitArrays,
    batches_per_epoch: int,
    normalization: Normalization | None,
    *,
    num_classes: int,
    seed: int,
    rank: int,
    device: torch.device,
) -> TrainingRecipe:
    """The recipe of `config.train` for `model` (already on `device`) and its optimiser."""
    train_params = config.train
    return TrainingRecipe(
        optimizer=optimizer,
        scheduler=make_scheduler(optimizer, train_params, batches_per_epoch),
        normalization=normalization,
        device=device,
        amp=train_params.amp,
        penalty=penalty_for(model, train_params),
        class_weights=class_weights(train_params, train_set, num_classes, device),
        smoothing=train_params.label_smoothing,
        mixer=mixer_for(mixup=train_params.mixup, cutmix=train_params.cutmix, mix_prob=train_params.mix_prob,
                        num_classes=num_classes, seed=seed, rank=rank),
        ema=weight_average(model, train_params.ema),
        lookahead=_lookahead(model, train_params, batches_per_epoch),
    )


def _lookahead(model: nn.Module, train_params: TrainParams, batches_per_epoch: int) -> Lookahead | None:
    """airbench's lookahead over the run's steps (`train.lookahead_every`); None when it is 0 (off)."""
    if not train_params.lookahead_every:
        return None
    return Lookahead(model, train_params.lookahead_every, train_params.lookahead_decay,
                     train_params.epochs * batches_per_epoch)


def make_optimizer(groups: Iterable, train_params: TrainParams) -> torch.optim.Optimizer:
    """Adam or SGD (with momentum, Nesterov's with `train.nesterov`) from `train.*`, over parameter groups that may
    carry their own rates."""
    if train_params.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=initial_lr(train_params), momentum=train_params.momentum, nesterov=train_params.nesterov,
            weight_decay=train_params.weight_decay,
        )
    return torch.optim.Adam(groups, lr=initial_lr(train_params), weight_decay=train_params.weight_decay)


def batchnorm_rate(model: nn.Module, groups: list[dict], train_params: TrainParams) -> list[dict]:
    """`train.bn_lr_scale`: the BatchNorm layers' trainable parameters (with fixed scales, as airbench's: their
    shifts) moved from each group into one of their own, first, at `bn_lr_scale` times the group's rate and its
    weight decay divided by as much, so that the decay each step applies (rate x decay) stays the group's
    (airbench's `bias_scaler`). The groups as they are when it is 1."""
    scale = train_params.bn_lr_scale
    if scale == 1:
        return groups
    if not has_batchnorm(model):
        raise PipelineError("train.bn_lr_scale: the model has no BatchNorm layers; set bn_lr_scale to 1")
    normed = {id(p) for module in model.modules() if isinstance(module, BATCHNORM) for p in module.parameters()}
    scaled, rest = [], []
    for group in groups:
        inside = [p for p in group["params"] if id(p) in normed]
        decay = group.get("weight_decay", train_params.weight_decay)
        if inside:
            scaled.append({**group, "params": inside, "lr": group["lr"] * scale, "weight_decay": decay / scale})
        rest.append({**group, "params": [p for p in group["params"] if id(p) not in normed]})
    return scaled + [group for group in rest if group["params"]]


def weight_average(model: nn.Module, decay: float) -> AveragedModel | None:
    """The moving average of `model`'s weights and buffers at `decay` (`train.ema`); None when it is 0 (off)."""
    if not decay:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def class_weights(
    train_params: TrainParams, train_set: SplitArrays, num_classes: int, device: torch.device
) -> torch.Tensor | None:
    """`train.class_weights: auto`: the training loss weighs each class by its inverse frequency in the training
    split, so that an imbalanced dataset's small classes count as much as its large ones; `none`: plain mean."""
    if train_params.class_weights == "none":
        return None
    return inverse_frequency(torch.from_numpy(train_set.labels), num_classes).to(device)


def penalty_for(model: nn.Module, train_params: TrainParams) -> Penalty:
    """The `train.l1`/`train.l2` penalty on the model's kernels (nothing penalised when both are 0)."""
    l1, l2 = train_params.l1, train_params.l2
    return Penalty(penalized_weights(model) if l1 or l2 else [], l1, l2)


def penalized_weights(model: nn.Module) -> list[torch.Tensor]:
    """The trainable conv and dense kernels: what `l1` and `l2` penalise (not biases or BatchNorm scales)."""
    return [p for p in model.parameters() if p.requires_grad and p.dim() > 1]


def weight_penalty(kernels: list[torch.Tensor], l1: float, l2: float) -> torch.Tensor:
    """l1 * sum |w| + l2 * sum w^2 over the kernels, as Keras' kernel regularizers add it to the loss.

    The optimizer's `weight_decay` is separate: it shrinks every parameter (biases too) inside the update step and
    is never part of a logged loss.
    """
    total = torch.zeros((), device=kernels[0].device)
    for weights in kernels:
        if l1:
            total = total + l1 * weights.abs().sum()
        if l2:
            total = total + l2 * weights.square().sum()
    return total
