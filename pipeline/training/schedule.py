"""Learning-rate schedules from `train.lr_schedule`, stepped once per epoch.

`constant` keeps `lr`; `cosine` anneals it to zero over the run; a list of `{lr, epochs}` steps holds each rate
for its epochs (the classic 1e-1, 1e-2, 1e-3, 1e-4 for 10 epochs each), the last one for any epochs beyond.
"""

import math

import torch

from pipeline.config.training import TrainParams


def initial_lr(settings: TrainParams) -> float:
    """The learning rate of the first epoch: the first step's rate for a step list, else `lr`."""
    return settings.lr_schedule[0].lr if isinstance(settings.lr_schedule, list) else settings.lr


def lr_at(settings: TrainParams, epoch: int) -> float:
    """The learning rate of 0-based `epoch`."""
    schedule = settings.lr_schedule
    if schedule == "cosine":
        return settings.lr * 0.5 * (1 + math.cos(math.pi * epoch / settings.epochs))
    if isinstance(schedule, list):
        end = 0
        for step in schedule:
            end += step.epochs
            if epoch < end:
                return step.lr
        return schedule[-1].lr
    return settings.lr


def make_scheduler(optimizer: torch.optim.Optimizer, settings: TrainParams) -> torch.optim.lr_scheduler.LambdaLR:
    """Scale every parameter group's rate by the schedule, so groups with their own rate keep their ratio."""
    first = initial_lr(settings)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: lr_at(settings, epoch) / first)
