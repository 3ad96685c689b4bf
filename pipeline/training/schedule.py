"""Learning-rate schedules from `train.lr_schedule` and `train.warmup_epochs`, stepped once per batch.

`constant` keeps `lr`; `cosine` anneals it to zero over the run, epoch by epoch (every batch of an epoch has the
epoch's rate); a list of `{lr, epochs}` steps holds each rate for its epochs (the classic 1e-1, 1e-2, 1e-3, 1e-4 for
10 epochs each), the last one for any epochs beyond. These three give every batch of an epoch the rate they gave
the epoch when they were stepped once per epoch. `onecycle` is torch's `OneCycleLR` shape (cosine annealing,
`div_factor` 25, `final_div_factor` 1e4), batch by batch: it rises from lr/25 to `lr` over the first 30% of the
steps (or over `warmup_epochs` when set), then anneals to lr/25/1e4 at the last step. `triangle` is airbench94's,
batch by batch too: straight from 0.2 lr up to `lr` at 23% of the steps, then straight down to 0.07 lr at the last.

`warmup_epochs` (other schedules) scales the schedule's rate linearly from 1/warmup-steps to 1 over the first
batches of those epochs (Goyal et al.'s gradual warmup).
"""

import math

import torch

from pipeline.config.training import TrainParams

ONE_CYCLE_RISE = 0.3  # OneCycleLR's pct_start
ONE_CYCLE_START = 1 / 25  # 1 / div_factor
ONE_CYCLE_END = ONE_CYCLE_START / 1e4  # 1 / (div_factor * final_div_factor)
TRIANGLE_START, TRIANGLE_PEAK, TRIANGLE_END = 0.2, 0.23, 0.07  # airbench94's: shares of lr, the peak's share of steps


def initial_lr(train_params: TrainParams) -> float:
    """The base learning rate the optimizer is built with: the first step's rate for a step list, else `lr`."""
    return train_params.lr_schedule[0].lr if isinstance(train_params.lr_schedule, list) else train_params.lr


def lr_at(train_params: TrainParams, epoch: int, batch: int = 0, batches: int = 1) -> float:
    """The learning rate of batch `batch` (of `batches` an epoch) of 0-based `epoch`, warmup included."""
    step, schedule = epoch * batches + batch, train_params.lr_schedule
    if schedule == "onecycle":
        rise = train_params.warmup_epochs * batches if train_params.warmup_epochs else ONE_CYCLE_RISE * train_params.epochs * batches
        return train_params.lr * _one_cycle(step, train_params.epochs * batches, rise)
    if schedule == "triangle":
        return train_params.lr * _triangle(step, train_params.epochs * batches)
    warm = train_params.warmup_epochs * batches
    return _epoch_rate(train_params, epoch) * (min(1.0, (step + 1) / warm) if warm else 1.0)


def _epoch_rate(train_params: TrainParams, epoch: int) -> float:
    """The rate of the epoch-wise schedules (constant, cosine, steps) for 0-based `epoch`."""
    schedule = train_params.lr_schedule
    if schedule == "cosine":
        return train_params.lr * 0.5 * (1 + math.cos(math.pi * epoch / train_params.epochs))
    if isinstance(schedule, list):
        end = 0
        for step in schedule:
            end += step.epochs
            if epoch < end:
                return step.lr
        return schedule[-1].lr
    return train_params.lr


def _one_cycle(step: int, total: int, rise: float) -> float:
    """OneCycleLR's factor of `lr` at 0-based `step` of `total`: cosine from 1/25 up to 1 at step `rise - 1`, then
    cosine down to 1/25/1e4 at the last step (the phase ends as torch places them)."""
    peak = rise - 1
    if step <= peak:
        return _cosine(ONE_CYCLE_START, 1.0, step / peak if peak > 0 else 1.0)
    return _cosine(1.0, ONE_CYCLE_END, (step - peak) / (total - 1 - peak))


def _triangle(step: int, total: int) -> float:
    """airbench94's factor of `lr` at `step` of `total`: linear from TRIANGLE_START up to 1 at the peak step, then
    linear down to TRIANGLE_END at step `total`."""
    peak = int(TRIANGLE_PEAK * total)
    if step < peak:
        return TRIANGLE_START + (1 - TRIANGLE_START) * step / peak
    return 1 + (TRIANGLE_END - 1) * (step - peak) / max(1, total - peak)


def _cosine(start: float, end: float, done: float) -> float:
    """From `start` (done 0) to `end` (done 1) along half a cosine, as OneCycleLR's `anneal_strategy='cos'`."""
    return end + (start - end) / 2 * (math.cos(math.pi * done) + 1)


def make_scheduler(
    optimizer: torch.optim.Optimizer, train_params: TrainParams, batches: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A scheduler to step after every batch (`batches` an epoch); it scales every parameter group's rate by the
    schedule, so groups with their own rate keep their ratio."""
    first = initial_lr(train_params)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_at(train_params, step // batches, step % batches, batches) / first
    )
