"""One plain training step for tests that drive a model by hand: the train stage's `train_step` with a recipe of
the optimiser alone (no schedule, penalty, smoothing, mixing or weight average)."""

import torch
from torch import nn

from pipeline.stages.train import train_step
from pipeline.training.recipe import TrainingRecipe


def plain_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor, labels: torch.Tensor, amp: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`train_step` of `model` on one batch with nothing but `optimizer` (and autocast when `amp`)."""
    recipe = TrainingRecipe(optimizer=optimizer, scheduler=None, normalization=None, device=inputs.device, amp=amp)
    return train_step(model, recipe, inputs, labels)
