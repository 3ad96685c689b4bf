"""Stage `train`: fit one model from params on its dataset's preprocessed train split.

Logs per-epoch train and validation loss and accuracy with DVCLive (`metrics/<model>/train/`, drawn by
`dvc plots show`), saves a learning-curve image, and writes the model with its provenance to `models/<model>.pt`.
"""

import numpy as np
import torch
from dvclive import Live
from torch import nn
from tqdm import tqdm

from pipeline.augment import build_augment
from pipeline.checkpoint import save_model
from pipeline.models import build_model, loss, probabilities
from pipeline.params import Params, TrainParams
from pipeline.paths import Paths
from pipeline.plots import learning_curves
from pipeline.preprocess import SplitArrays, load_meta, load_split
from pipeline.runtime import batch_count, batches, pick_device, predict, seed_everything


def train(model_name: str, params: Params, paths: Paths) -> dict[str, float]:
    """Train one model; returns the last epoch's figures (train/val loss and accuracy)."""
    config = params.model(model_name)
    settings = config.train
    device = pick_device(settings.device)
    seed_everything(params.seed, device)
    meta = load_meta(paths, config.dataset)
    train_set, val_set = load_split(paths, config.dataset, "train"), load_split(paths, config.dataset, "val")
    data = {**meta, "channels": train_set.images.shape[-1]}
    model = build_model(
        config.arch, config.arch_args, in_channels=data["channels"], size=meta["size"], num_classes=len(meta["classes"])
    ).to(device)
    optimizer = make_optimizer(model, settings)
    augment = build_augment(config.aug, params.seed)
    generator = torch.Generator().manual_seed(params.seed)
    history: list[dict[str, float]] = []
    steps = batch_count(len(train_set.labels), settings.batch_size)
    live_dir = str(paths.train_dir(model_name))
    with Live(live_dir, dvcyaml=None, save_dvc_exp=False) as live, tqdm(
        total=settings.epochs * steps, desc=f"train {model_name}", unit="batch", disable=None
    ) as bar:
        for epoch in range(1, settings.epochs + 1):
            shuffled = batches(
                train_set.images, train_set.labels, settings.batch_size, generator=generator, augment=augment
            )
            train_loss, train_acc = train_one_epoch(model, shuffled, optimizer, device, bar)
            val_loss, val_acc = measure(model, val_set, settings.batch_size, device)
            row = {"train/loss": train_loss, "train/acc": train_acc, "val/loss": val_loss, "val/acc": val_acc}
            history.append({"epoch": epoch, **row})
            live.step = epoch
            for key, value in row.items():
                live.log_metric(key, value)
            live.next_step()
            bar.set_postfix(epoch=epoch, loss=f"{train_loss:.3f}", val_acc=f"{val_acc:.3f}")
        best = max(history, key=lambda item: item["val/acc"])
        live.summary["best"] = {"epoch": best["epoch"], "val/acc": best["val/acc"], "val/loss": best["val/loss"]}
        live.log_image("learning_curves.png", learning_curves(history, f"{model_name} on {config.dataset}"))
    save_model(paths.model_file(model_name), model, config, data, params.seed)
    return history[-1]


def make_optimizer(model: nn.Module, settings: TrainParams) -> torch.optim.Optimizer:
    """Adam or SGD (with momentum) from `train.*`."""
    if settings.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay
        )
    return torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)


def train_one_epoch(
    model: nn.Module, data, optimizer: torch.optim.Optimizer, device: torch.device, bar: tqdm
) -> tuple[float, float]:
    """One pass over the shuffled training batches; returns the mean loss and accuracy seen in training mode."""
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    for images, labels in data:
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        logits = model(images)
        batch_loss = loss(logits, labels)
        batch_loss.backward()
        optimizer.step()
        total_loss += batch_loss.item() * len(labels)
        correct += (probabilities(logits).argmax(1) == labels).sum().item()
        seen += len(labels)
        bar.update()
    return total_loss / seen, correct / seen


def measure(model: nn.Module, split: SplitArrays, batch_size: int, device: torch.device) -> tuple[float, float]:
    """Loss and accuracy of the model in eval mode on a whole split."""
    logits = predict(model, split.images, batch_size, device)
    labels = torch.from_numpy(split.labels)
    accuracy = float(np.mean(probabilities(logits).argmax(1).numpy() == split.labels))
    return loss(logits, labels).item(), accuracy
