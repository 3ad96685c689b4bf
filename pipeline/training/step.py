"""One training step and its weight penalty.

The train stage, `pipeline sanity overfit`, `pipeline lr-find` and `pipeline bench` all step through `training_step`,
so mixed precision and the `l1`/`l2` penalty mean the same thing in each.
"""

from dataclasses import dataclass

import torch
from torch import nn

from pipeline.config.training import TrainParams
from pipeline.core.runtime import mixed_precision
from pipeline.models.outputs import loss


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


def penalty_for(model: nn.Module, settings: TrainParams) -> Penalty:
    """The `train.l1`/`train.l2` penalty on the model's kernels (nothing penalised when both are 0)."""
    return Penalty(penalized_weights(model) if settings.l1 or settings.l2 else [], settings.l1, settings.l2)


def training_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    amp: bool = True,
    penalty: Penalty = NO_PENALTY,
    class_weights: torch.Tensor | None = None,
    smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One optimisation step, in bf16 autocast on a CUDA device that has it if `amp`; returns the logits, the data
    loss (weighted by class when `class_weights` are given, against targets smoothed by `smoothing`; `labels` may be
    soft targets, see `outputs.loss`) and the penalty, detached and left on the device."""
    optimizer.zero_grad(set_to_none=True)
    with mixed_precision(inputs.device, amp):
        logits = model(inputs)
    batch_loss = loss(logits.float(), labels, class_weights, smoothing)
    weights = penalty(batch_loss)
    (batch_loss + weights).backward()
    optimizer.step()
    return logits.detach(), batch_loss.detach(), weights.detach()


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
