"""airbench94's lookahead (`train.lookahead_every`, `train.lookahead_decay`): an average of the weights that the
weights are pulled back to every few steps.

Every `lookahead_every` optimisation steps, the average moves toward the weights, average = decay_t * average +
(1 - decay_t) * weights, and the weights (BatchNorm's running statistics too) are set to the average; decay_t =
`lookahead_decay` * (step / total steps)^3, so the pull is nothing at the start and strongest at the end. After the
run's last step the weights become the average. Unlike `train.ema`, which only watches the weights, the lookahead
changes the trajectory: the optimiser goes on from the average.
"""

from typing import Any

import torch
from torch import nn


class Lookahead:
    """The average of `model`'s floating-point weights and buffers, and how many steps the run has taken."""

    def __init__(self, model: nn.Module, every: int, decay: float, total_steps: int) -> None:
        self.every, self.decay, self.total_steps = every, decay, total_steps
        self.average = {name: value.detach().clone() for name, value in _floats(model).items()}
        self.steps = 0

    @torch.no_grad()
    def step(self, model: nn.Module) -> None:
        """After an optimisation step: every `every` steps pull the weights to the moved average; after the last
        step of the run, set them to it."""
        self.steps += 1
        if self.steps % self.every == 0:
            self._pull(model, self.decay * (self.steps / self.total_steps) ** 3)
        if self.steps == self.total_steps:
            self._pull(model, 1.0)

    def _pull(self, model: nn.Module, decay: float) -> None:
        for name, value in _floats(model).items():
            average = self.average[name]
            average.lerp_(value, 1 - decay)
            value.copy_(average)

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps: the average and the steps taken."""
        return {"average": self.average, "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from a checkpoint's state; a KeyError or shape error if it is not a lookahead's of this model."""
        if set(state["average"]) != set(self.average):
            raise KeyError("the lookahead's average holds other weights than this model's")
        for name, value in state["average"].items():
            self.average[name].copy_(value)
        self.steps = int(state["steps"])


def _floats(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's floating-point parameters and buffers by name (BatchNorm's batch counter left out)."""
    return {name: value for name, value in model.state_dict(keep_vars=True).items() if value.is_floating_point()}
