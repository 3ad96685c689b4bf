"""A training run's parts, built one way for the train stage and for the tools that train (`pipeline bench`,
`lr-find`, `sanity overfit`): seeded, the dataset's meta.json and training split read, then a freshly initialised
model (pretrained where its params ask) on the device and its optimizer. Seeding first and building in this order is
what makes two runs with the same params and seed start from the same weights."""

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from pipeline.config.params import ModelConfig
from pipeline.config.training import TrainParams
from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths
from pipeline.core.runtime import Normalization, place, seed_everything
from pipeline.data.store import DatasetMeta, SplitArrays, load_meta, load_split
from pipeline.models.registry import build_model, parameter_groups
from pipeline.training.schedule import initial_lr


@dataclass(frozen=True)
class TrainingSetup:
    """What every run starts from: the dataset's meta.json and training split, how inputs are standardised, and the
    model on its device with its optimizer."""

    meta: DatasetMeta
    train_set: SplitArrays
    normalization: Normalization | None
    model: nn.Module
    optimizer: torch.optim.Optimizer

    @property
    def channels(self) -> int:
        """An image's channels, or a table's features: the model's input width."""
        return input_channels(self.train_set)


def build_run(config: ModelConfig, seed: int, paths: Paths, device: torch.device) -> TrainingSetup:
    """Seed everything, read the model's dataset, and build its model and optimizer (see the module's docstring)."""
    seed_everything(seed, device)
    meta = load_meta(paths, config.dataset)
    train_set = load_split(paths, config.dataset, "train")
    model, optimizer = model_and_optimizer(config, meta, input_channels(train_set), device)
    return TrainingSetup(meta, train_set, Normalization.from_stats(meta), model, optimizer)


def model_and_optimizer(
    config: ModelConfig, meta: DatasetMeta, channels: int, device: torch.device
) -> tuple[nn.Module, torch.optim.Optimizer]:
    """A fresh model of the config's architecture on `device`, and its optimizer over its parameter groups (a
    group may carry its own rate, relative to `train.lr`)."""
    model = place(fresh_model(config, meta, channels), device)
    return model, make_optimizer(parameter_groups(model, initial_lr(config.train)), config.train)


def fresh_model(config: ModelConfig, meta: DatasetMeta, channels: int) -> nn.Module:
    """The model, freshly initialised (and pretrained where asked); a failure names the model's params block."""
    try:
        return build_model(
            config.arch, config.arch_args, in_channels=channels, size=meta.size, num_classes=len(meta.classes)
        )
    except PipelineError as exc:
        raise PipelineError(f"models.{config.name}: {exc}") from None


def make_optimizer(groups: Iterable, settings: TrainParams) -> torch.optim.Optimizer:
    """Adam or SGD (with momentum) from `train.*`, over parameter groups that may carry their own rates."""
    if settings.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=initial_lr(settings), momentum=settings.momentum, weight_decay=settings.weight_decay
        )
    return torch.optim.Adam(groups, lr=initial_lr(settings), weight_decay=settings.weight_decay)


def input_channels(split: SplitArrays) -> int:
    """An image split's channels (N, H, W, C), or a table split's features (N, F)."""
    return split.inputs.shape[-1]
