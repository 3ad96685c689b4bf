"""One training epoch: every batch normalised, mixed (`train.mixup`/`cutmix`), stepped, the learning rate stepped
and the weights' moving average (`train.ema`) updated after every step.

`train.ema` keeps an exponential moving average of the weights and BatchNorm buffers (torch's `AveragedModel` with
`get_ema_multi_avg_fn`, `use_buffers=True`): after every optimisation step, average = decay * average + (1 - decay)
* weights, starting from the weights after the first step. Validation, the kept model and models/<model>.pt use it.
"""

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from pipeline.analysis.diagnostics import confidence_figures
from pipeline.core.distributed import gathered_uneven, summed, unwrapped
from pipeline.core.runtime import Normalization, model_input
from pipeline.models.outputs import loss, probabilities
from pipeline.training.mixing import Mixer
from pipeline.training.step import NO_PENALTY, Penalty, training_step


def weight_average(model: nn.Module, decay: float) -> AveragedModel | None:
    """The moving average of `model`'s weights and buffers at `decay` (`train.ema`); None when it is 0 (off)."""
    if not decay:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


@dataclass(frozen=True, kw_only=True)
class Stepping:
    """How each training batch is taken: its normalisation, the optimizer and the per-batch scheduler, mixed
    precision, the weight penalty, the loss's class weights and label smoothing, the batch mixer and the weights'
    moving average (None: off), and the device the figures add up on."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    normalization: Normalization
    device: torch.device
    amp: bool = True
    penalty: Penalty = NO_PENALTY
    class_weights: torch.Tensor | None = None
    smoothing: float = 0.0
    mixer: Mixer | None = None
    ema: AveragedModel | None = None


@dataclass(frozen=True)
class EpochFit:
    """What one training epoch saw, in training mode: mean data loss, accuracy, mean weight penalty, how sure the
    model was of the true class (see `diagnostics.confidence_figures`), and the last batch's learning rate."""

    loss: float
    accuracy: float
    penalty: float
    confidence: dict[str, float]
    lr: float


def train_one_epoch(
    model: nn.Module,
    data: Iterable[tuple[torch.Tensor, torch.Tensor]],
    real_counts: list[int],
    stepping: Stepping,
    epoch: int,
    bar: tqdm,
) -> EpochFit:
    """One pass over the epoch's batches, minimising data loss plus the `l1`/`l2` weight penalty.

    Data loss and penalty are reported apart, so losses stay comparable between runs with different penalties. The
    loss is the one minimised (smoothed and mixed targets, when on); a mixed image counts as right when the model
    predicts the label with the larger weight in it. The figures add up on the device and reach the host once, at
    the end: no step waits for the GPU. Under torchrun the sampler pads the last batches with repeated images so
    that every process takes as many steps; they train like the others but are left out of the figures
    (`real_counts`: the real images of each batch).
    """
    model.train()
    sums = torch.zeros(3, device=stepping.device)  # data loss, penalty, correct
    seen_probabilities, seen_labels, lr = [], [], 0.0
    for number, ((raw, labels), real) in enumerate(zip(data, real_counts, strict=True)):
        inputs, targets = model_input(raw, stepping.normalization), labels
        if stepping.mixer is not None:
            inputs, targets, labels = stepping.mixer(inputs, labels, epoch, number)
        logits, batch_loss, weights = training_step(
            model, stepping.optimizer, inputs, targets, stepping.amp, stepping.penalty, stepping.class_weights,
            stepping.smoothing,
        )
        lr = stepping.optimizer.param_groups[-1]["lr"]
        stepping.scheduler.step()
        if stepping.ema is not None:
            stepping.ema.update_parameters(unwrapped(model))
        if real < len(labels):
            logits, labels, targets = logits[:real], labels[:real], targets[:real]
            batch_loss = loss(logits.float(), targets, stepping.class_weights, stepping.smoothing)
        batch_probabilities = probabilities(logits.float())
        correct = (batch_probabilities.argmax(1) == labels).sum()
        sums += torch.stack([batch_loss * len(labels), weights * len(labels), correct])
        seen_probabilities.append(batch_probabilities)
        seen_labels.append(labels)
        bar.update()
    all_probabilities = gathered_uneven(torch.cat(seen_probabilities)).cpu().numpy()
    all_labels = gathered_uneven(torch.cat(seen_labels)).cpu().numpy()
    mean_loss, mean_penalty, accuracy = (summed(sums) / len(all_labels)).tolist()
    return EpochFit(mean_loss, accuracy, mean_penalty, confidence_figures(all_probabilities, all_labels), lr)
