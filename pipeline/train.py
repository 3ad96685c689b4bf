"""Stage `train`: fit one model from params on its dataset's preprocessed train split.

Logs per-epoch train and validation loss and accuracy, and the `l1`/`l2` weight penalty apart from the data loss,
with DVCLive (`metrics/<model>/train/`, drawn by `dvc plots show`); saves a learning-curve image and a preview of
what `aug.*` does to training images; writes the model with its provenance to `models/<model>.pt`.
A checkpoint after every epoch (`models/checkpoints/<model>.ckpt`) lets a killed run resume when run again.
"""

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from dvclive import Live
from matplotlib.figure import Figure
from torch import nn
from tqdm import tqdm

from pipeline.augment import augmented_samples, build_augment, describe
from pipeline.checkpoint import save_model
from pipeline.errors import PipelineError
from pipeline.diagnostics import confidence_figures, mode_gap
from pipeline.models import build_model, has_batchnorm, loss, parameter_groups, probabilities
from pipeline.params import ModelConfig, Params, TrainParams
from pipeline.paths import Paths
from pipeline.plots import augmentation_preview, learning_curves
from pipeline.preprocess import SplitArrays, load_meta, load_split, split_files
from pipeline.resume import Checkpoint, run_fingerprint
from pipeline.runtime import Normalization, batch_count, batches, pick_device, place, predict, seed_everything
from pipeline.schedule import initial_lr, make_scheduler

PREVIEW_IMAGES, PREVIEW_DRAWS = 6, 3


def train(model_name: str, params: Params, paths: Paths) -> dict[str, float | int | str]:
    """Train one model (resuming its checkpoint if a previous run was cut short); returns the last epoch's row."""
    config = params.model(model_name)
    settings = config.train
    device = pick_device(settings.device)
    seed_everything(params.seed, device)
    meta = load_meta(paths, config.dataset)
    train_set, val_set = load_split(paths, config.dataset, "train"), load_split(paths, config.dataset, "val")
    data = {**meta, "channels": train_set.inputs.shape[-1]}
    model = place(build_for(model_name, config, data), device)
    optimizer = make_optimizer(parameter_groups(model, initial_lr(settings)), settings)
    scheduler = make_scheduler(optimizer, settings)
    fingerprint = run_fingerprint(config, params.seed, split_files(paths, config.dataset, ("train", "val")))
    checkpoint = Checkpoint(paths.checkpoint(model_name), fingerprint)
    done = checkpoint.restore(model, optimizer, scheduler)
    run = _Run(config, params.seed, meta, device)
    steps = batch_count(len(train_set.labels), settings.batch_size)
    with Live(str(paths.train_dir(model_name)), dvcyaml=None, save_dvc_exp=False) as live, tqdm(
        total=settings.epochs * steps, initial=done * steps, desc=f"train {model_name} ({device})", unit="batch",
        disable=None,
    ) as bar:
        if run.augments_images:
            live.log_image("augmentation.png", _augmentation_preview(config, params.seed, train_set))
        for row in checkpoint.history:
            _log(live, row)
        for epoch in range(done + 1, settings.epochs + 1):
            row = run.epoch(epoch, model, optimizer, train_set, val_set, bar)
            scheduler.step()
            checkpoint.history.append(row)
            _log(live, row)
            checkpoint.save(model, optimizer, scheduler)
            bar.set_postfix(epoch=epoch, loss=f"{row['train/loss']:.3f}", val_acc=f"{row['val/acc']:.3f}")
        summary = _summarise(live, checkpoint.history, f"{model_name} on {config.dataset}")
        if has_batchnorm(model):
            summary["bn_check"] = run.mode_check(model, train_set, checkpoint.history[-1])
            live.summary["bn_check"] = summary["bn_check"]
    save_model(paths.model_file(model_name), model, config, data, params.seed)
    checkpoint.remove()
    return {**checkpoint.history[-1], **summary, "resumed_from_epoch": done, "device": str(device)}


def build_for(model_name: str, config: ModelConfig, data: dict) -> nn.Module:
    """The model, freshly initialised (and pretrained where asked); a failure names the model's params block."""
    try:
        return build_model(
            config.arch, config.arch_args, in_channels=data["channels"], size=data["size"],
            num_classes=len(data["classes"]),
        )
    except PipelineError as exc:
        raise PipelineError(f"models.{model_name}: {exc}") from None


def make_optimizer(groups: Iterable, settings: TrainParams) -> torch.optim.Optimizer:
    """Adam or SGD (with momentum) from `train.*`, over parameter groups that may carry their own rates."""
    if settings.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=initial_lr(settings), momentum=settings.momentum, weight_decay=settings.weight_decay
        )
    return torch.optim.Adam(groups, lr=initial_lr(settings), weight_decay=settings.weight_decay)


class _Run:
    """What stays fixed across the epochs of one training run."""

    def __init__(self, config: ModelConfig, seed: int, meta: dict, device: torch.device) -> None:
        self.config, self.seed, self.device = config, seed, device
        self.normalization = Normalization.from_meta(meta)
        self.augments_images = meta.get("kind", "images") == "images"  # a table's rows are not augmented
        self.augment = build_augment(config.aug, seed, size=meta["size"]) if self.augments_images else None

    def epoch(
        self,
        epoch: int,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        train_set: SplitArrays,
        val_set: SplitArrays,
        bar: tqdm,
    ) -> dict[str, float]:
        """Train one epoch and measure on the validation split; returns the epoch's row of the history."""
        settings = self.config.train
        generator = _seed_epoch(self.seed, epoch, self.augment)
        shuffled = batches(
            train_set.inputs, train_set.labels, settings.batch_size,
            generator=generator, augment=self.augment, normalization=self.normalization,
        )
        fit = train_one_epoch(model, shuffled, optimizer, self.device, bar, settings.l1, settings.l2)
        val = measure(model, val_set, settings.batch_size, self.device, self.normalization)
        return {
            "epoch": epoch,
            "train/loss": fit.loss,
            "train/acc": fit.accuracy,
            "train/penalty": fit.penalty,
            **{f"train/{key}": value for key, value in fit.confidence.items()},
            "val/loss": val.loss,
            "val/acc": val.accuracy,
            **{f"val/{key}": value for key, value in val.confidence.items()},
            "lr": optimizer.param_groups[-1]["lr"],
        }

    def mode_check(self, model: nn.Module, train_set: SplitArrays, last: dict[str, float]) -> dict[str, float | bool]:
        """The training split in eval mode (no augmentation) beside the last epoch's train-mode figures."""
        scores = measure(model, train_set, self.config.train.batch_size, self.device, self.normalization)
        return mode_gap(
            {"acc": last["train/acc"], "loss": last["train/loss"]}, {"acc": scores.accuracy, "loss": scores.loss}
        )


def _seed_epoch(seed: int, epoch: int, augment) -> torch.Generator:
    """Seed everything random in one epoch from (seed, epoch) alone, so a resumed run repeats it exactly."""
    epoch_seed = int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])
    torch.manual_seed(epoch_seed)
    if augment is not None:
        augment.set_random_seed(epoch_seed)
    return torch.Generator().manual_seed(epoch_seed)


@dataclass(frozen=True)
class EpochFit:
    """What one training epoch saw, in training mode: mean data loss, accuracy, mean weight penalty, and how sure
    the model was of the true class (see `diagnostics.confidence_figures`)."""

    loss: float
    accuracy: float
    penalty: float
    confidence: dict[str, float]


@dataclass(frozen=True)
class SplitScores:
    """A whole split scored in eval mode: loss, accuracy and the true-class confidence figures."""

    loss: float
    accuracy: float
    confidence: dict[str, float]


def train_one_epoch(
    model: nn.Module,
    data: Iterable[tuple[torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    bar: tqdm,
    l1: float = 0.0,
    l2: float = 0.0,
) -> EpochFit:
    """One pass over the shuffled training batches, minimising data loss plus the `l1`/`l2` weight penalty.

    Data loss and penalty are reported apart, so losses stay comparable between runs with different penalties.
    """
    model.train()
    kernels = penalized_weights(model) if l1 or l2 else []
    total_loss, total_penalty, correct, seen = 0.0, 0.0, 0, 0
    seen_probabilities, seen_labels = [], []
    for images, labels in data:
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        logits = model(images)
        batch_loss = loss(logits, labels)
        penalty = weight_penalty(kernels, l1, l2) if kernels else None
        (batch_loss if penalty is None else batch_loss + penalty).backward()
        optimizer.step()
        total_loss += batch_loss.item() * len(labels)
        total_penalty += 0.0 if penalty is None else penalty.item() * len(labels)
        batch_probabilities = probabilities(logits.detach()).float().cpu()
        correct += (batch_probabilities.argmax(1) == labels.cpu()).sum().item()
        seen += len(labels)
        seen_probabilities.append(batch_probabilities)
        seen_labels.append(labels.cpu())
        bar.update()
    confidence = confidence_figures(torch.cat(seen_probabilities).numpy(), torch.cat(seen_labels).numpy())
    return EpochFit(total_loss / seen, correct / seen, total_penalty / seen, confidence)


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


def measure(
    model: nn.Module,
    split: SplitArrays,
    batch_size: int,
    device: torch.device,
    normalization: Normalization | None = None,
) -> SplitScores:
    """Loss, accuracy and true-class confidence of the model in eval mode on a whole split."""
    logits = predict(model, split.inputs, batch_size, device, normalization)
    predicted = probabilities(logits).numpy()
    accuracy = float(np.mean(predicted.argmax(1) == split.labels))
    confidence = confidence_figures(predicted, split.labels)
    return SplitScores(loss(logits, torch.from_numpy(split.labels)).item(), accuracy, confidence)


def _augmentation_preview(config: ModelConfig, seed: int, train_set: SplitArrays) -> Figure:
    """The first training images beside augmented versions of them, to see what `aug.*` does to the data."""
    originals = train_set.inputs[:PREVIEW_IMAGES]
    versions = augmented_samples(config.aug, seed, originals, PREVIEW_DRAWS)
    return augmentation_preview(originals, versions, f"{config.name}: {describe(config.aug)}")


def _log(live: Live, row: dict[str, float]) -> None:
    live.step = int(row["epoch"])
    for key, value in row.items():
        if key != "epoch":
            live.log_metric(key, value)
    live.next_step()


def _summarise(live: Live, history: list[dict[str, float]], title: str) -> dict:
    best = max(history, key=lambda item: item["val/acc"])
    live.summary["best"] = {"epoch": best["epoch"], "val/acc": best["val/acc"], "val/loss": best["val/loss"]}
    live.log_image("learning_curves.png", learning_curves(history, title))
    return {"best": live.summary["best"]}
