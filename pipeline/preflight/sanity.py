"""Command `sanity overfit`: can the model learn a handful of training images by heart?

A model that cannot drive the loss on three images to near zero has a bug. One that can, but predicts differently
in eval mode, shows what BatchNorm does: training normalises with each batch's own statistics, eval mode with
running averages that need many steps (or a higher `bn_momentum`) to catch up with those batches.

The images are trained by the train stage's own `fit`, with the model's recipe (optimiser, schedule, penalty,
class weights, label smoothing, weight average), as one batch of them per epoch; augmentation and MixUp/CutMix are
off, since the check is whether the model can learn these very images. With label smoothing, no model gets the loss
to zero: the target is that much above the smoothed targets' own entropy, the least loss there is.
"""

import copy
import math
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from pipeline.config.params import ModelConfig, Params
from pipeline.config.training import AugParams
from pipeline.core.paths import Paths
from pipeline.core.runtime import Normalization, pick_device, to_tensor
from pipeline.data.store import SplitArrays, load_meta, load_split
from pipeline.models.outputs import loss, output_count, probabilities
from pipeline.models.pretrained import stage_weights
from pipeline.stages.train import build_training, fit


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
    meta, split = load_meta(paths, config.dataset), load_split(paths, config.dataset, "train")
    chosen = _one_per_class_first(split.labels, n)
    images = SplitArrays(split.inputs[chosen], split.labels[chosen])
    fixed = _fixed_batches(config, len(chosen), max_steps)
    model, feed, recipe = build_training(fixed, params.seed, meta, images, device, weights=stage_weights(paths, config))
    floor = smoothing_floor(len(meta.classes), fixed.train.label_smoothing)
    history: list[dict] = []

    def learned(row: dict, _validation_s: float) -> bool:
        return len(history) >= min_steps and row["train/loss"] - floor < target_loss

    fit(model, recipe, feed, range(1, max_steps + 1), history, config=fixed, seed=params.seed, on_epoch=learned)
    inputs = to_tensor(images.inputs, Normalization.from_stats(meta)).to(device)
    labels = torch.from_numpy(images.labels).to(device)
    return _predictions(model, inputs, labels, chosen, meta.classes, len(history), history[-1]["train/loss"])


def _fixed_batches(config: ModelConfig, n: int, steps: int) -> ModelConfig:
    """The model's config training on the same `n` images every step: one batch of them an epoch, not augmented or
    mixed, its schedule over `steps` such epochs (no early stop)."""
    train = config.train.model_copy(update={
        "epochs": steps, "batch_size": n, "steps_per_epoch": None, "mixup": 0.0, "cutmix": 0.0, "patience": None,
        "stop_after": None,
    })
    return replace(config, train=train, aug=AugParams())


def smoothing_floor(num_classes: int, smoothing: float) -> float:
    """The least loss against label-smoothed targets: their own entropy (0 without smoothing)."""
    if not smoothing:
        return 0.0
    classes = 2 if output_count(num_classes) == 1 else num_classes
    share = [1 - smoothing + smoothing / classes] + [smoothing / classes] * (classes - 1)
    return -sum(p * math.log(p) for p in share)


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
            "batch statistics the model learned with. Train longer (--min-steps) or let each batch weigh more in "
            "the running statistics (-S models.<model>.bn_momentum=0.5)."
        )
    if all(p.train_mode[0] == p.actual for p in result.predictions):
        return "Train mode fits every image; eval mode agrees on " + (
            f"{sum(p.eval_mode[0] == p.actual for p in result.predictions)} of {len(result.predictions)}."
        )
    return "The model did not fit the images: raise --steps or the learning rate, or look for a bug."
