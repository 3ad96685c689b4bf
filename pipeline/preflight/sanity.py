"""Command `sanity overfit`: can the model learn a handful of training images by heart?

A model that cannot drive the loss on three images to near zero has a bug. One that can, but predicts differently
in eval mode, shows what BatchNorm does: training normalises with each batch's own statistics, eval mode with
running averages that need many steps (or a lower `bn_momentum`) to catch up with those batches.
"""

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pipeline.config.params import Params
from pipeline.core.paths import Paths
from pipeline.core.runtime import pick_device, to_tensor
from pipeline.models.outputs import loss, probabilities
from pipeline.training.run import build_run
from pipeline.training.step import penalty_for, training_step


@dataclass(frozen=True)
class Prediction:
    """One image's true class and the class (with its probability) the model gives it in each mode."""

    index: int
    actual: str
    train_mode: tuple[str, float]
    eval_mode: tuple[str, float]


@dataclass(frozen=True)
class OverfitResult:
    """How many steps it took, the loss at the last step (train mode), the loss in eval mode afterwards, and each
    image's predictions."""

    steps: int
    fit_loss: float
    eval_loss: float
    predictions: list[Prediction]

    @property
    def eval_collapsed(self) -> bool:
        """Eval mode gives every image the same class although train mode tells them apart."""
        eval_classes = {p.eval_mode[0] for p in self.predictions}
        train_classes = {p.train_mode[0] for p in self.predictions}
        return len(eval_classes) == 1 and len(train_classes) > 1


def overfit(
    model_name: str,
    params: Params,
    paths: Paths,
    n: int = 3,
    max_steps: int = 1000,
    min_steps: int = 0,
    target_loss: float = 0.01,
) -> OverfitResult:
    """Train a fresh model on the first `n` training images (of different classes where possible), one batch of
    them per step, until the train-mode loss is below `target_loss` (after at least `min_steps`, at most
    `max_steps`); then predict them in train and in eval mode."""
    config = params.model(model_name)
    device = pick_device(config.train.device)
    setup = build_run(config, params.seed, paths, device)
    model, optimizer, split = setup.model, setup.optimizer, setup.train_set
    chosen = _one_per_class_first(split.labels, n)
    images = to_tensor(split.inputs[chosen], setup.normalization).to(device)
    labels = torch.from_numpy(split.labels[chosen]).to(device)
    settings = config.train
    penalty = penalty_for(model, settings)
    model.train()
    steps, fit_loss = 0, float("inf")
    while steps < max_steps and (steps < min_steps or fit_loss >= target_loss):
        _, batch_loss, _ = training_step(model, optimizer, images, labels, settings.amp, penalty)
        fit_loss, steps = batch_loss.item(), steps + 1
    return _predictions(model, images, labels, chosen, setup.meta.classes, steps, fit_loss)


def _one_per_class_first(labels: np.ndarray, n: int) -> np.ndarray:
    """Indices of `n` training images: the first image of each class in turn, then the next of each, ..."""
    order = np.lexsort((np.arange(len(labels)), _rank_within_class(labels)))
    return np.sort(order[:n])


def _rank_within_class(labels: np.ndarray) -> np.ndarray:
    """For each image, how many images of its class come before it."""
    ranks = np.empty(len(labels), np.int64)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        ranks[members] = np.arange(len(members))
    return ranks


@torch.no_grad()
def _predictions(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    chosen: np.ndarray,
    classes: list[str],
    steps: int,
    fit_loss: float,
) -> OverfitResult:
    train_copy = copy.deepcopy(model).train()  # a train-mode pass updates BatchNorm statistics: use a copy
    train_logits = train_copy(images)
    model.eval()
    eval_logits = model(images)
    train_probs, eval_probs = probabilities(train_logits).cpu(), probabilities(eval_logits).cpu()
    rows = [
        Prediction(
            index=int(index),
            actual=classes[int(label)],
            train_mode=_top(train_probs[i], classes),
            eval_mode=_top(eval_probs[i], classes),
        )
        for i, (index, label) in enumerate(zip(chosen, labels.cpu(), strict=True))
    ]
    return OverfitResult(steps, fit_loss, loss(eval_logits, labels).item(), rows)


def _top(probs: torch.Tensor, classes: list[str]) -> tuple[str, float]:
    best = int(probs.argmax())
    return classes[best], float(probs[best])


def overfit_text(result: OverfitResult, model_name: str) -> str:
    """The result as a table a person reads, with a verdict."""
    lines = [
        f"{model_name}: {len(result.predictions)} training images, {result.steps} steps; "
        f"loss at the last step {result.fit_loss:.4f} (train mode), {result.eval_loss:.4f} in eval mode",
        "",
        f"{'image':>6}  {'true class':<12} {'train mode':<22} {'eval mode':<22}",
    ]
    for p in result.predictions:
        lines.append(
            f"{p.index:>6}  {p.actual:<12} {p.train_mode[0] + f' ({p.train_mode[1]:.2f})':<22} "
            f"{p.eval_mode[0] + f' ({p.eval_mode[1]:.2f})':<22}"
        )
    lines += ["", _verdict(result)]
    return "\n".join(lines)


def _verdict(result: OverfitResult) -> str:
    if result.eval_collapsed:
        return (
            "Eval mode predicts one class for all: BatchNorm's running statistics have not caught up with the "
            "batch statistics the model learned with. Train longer (--min-steps) or keep less of the running "
            "statistics per step (-S models.<model>.bn_momentum=0.5)."
        )
    if all(p.train_mode[0] == p.actual for p in result.predictions):
        return "Train mode fits every image; eval mode agrees on " + (
            f"{sum(p.eval_mode[0] == p.actual for p in result.predictions)} of {len(result.predictions)}."
        )
    return "The model did not fit the images: raise --steps or the learning rate, or look for a bug."
