"""The training loop: epochs of `training_step` over the feed, validation, DVCLive logging, checkpoints.

Logs per-epoch train and validation loss and accuracy, and the `l1`/`l2` weight penalty apart from the data loss,
with DVCLive (`metrics/<model>/train/`, drawn by `dvc plots show`); saves a learning-curve image and a preview of
what `aug.*` does to training images; writes the model with its provenance to `models/<model>.pt`.
A checkpoint after every epoch (`models/checkpoints/<model>.ckpt`) lets a killed run resume when run again.
On a GPU, steps run in bf16 autocast (`train.amp`); under torchrun (`pipeline train MODEL --nproc N`) the processes
share every batch through DistributedDataParallel and only rank 0 writes. The per-batch work (mixing, the step, the
learning rate, the weights' moving average) is `pipeline.training.epoch`'s; with `train.ema` on, validation, the
kept epoch and the saved model are the moving average's.
"""

import contextlib
import time
from collections.abc import Callable

import torch
from dvclive import Live
from matplotlib.figure import Figure
from torch import nn
from tqdm import tqdm

from pipeline.analysis.diagnostics import mode_gap
from pipeline.analysis.plots import augmentation_preview, learning_curves
from pipeline.config.params import ModelConfig, Params
from pipeline.config.training import TrainParams
from pipeline.core.distributed import (
    Shard,
    current_shard,
    process_group,
    same_everywhere,
    wrap,
)
from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths
from pipeline.core.runtime import (
    Normalization,
    derived_seed,
    pick_device,
    place,
    seed_everything,
)
from pipeline.data.store import SplitArrays, load_meta, load_split, split_files
from pipeline.models.file import save_model
from pipeline.models.outputs import inverse_frequency
from pipeline.models.registry import has_batchnorm, parameter_groups
from pipeline.training.augment import describe
from pipeline.training.checkpoints import Checkpoint, run_fingerprint
from pipeline.training.epoch import Stepping, train_one_epoch, weight_average
from pipeline.training.feed import TrainFeed, augmented_samples
from pipeline.training.fine_tune import fine_tune_epoch
from pipeline.training.keep import KeptWeights, chosen_row
from pipeline.analysis.measure import measure
from pipeline.training.mixing import mixer_for
from pipeline.training.schedule import initial_lr, make_scheduler
from pipeline.training.step import build_for, make_optimizer, penalty_for

PREVIEW_IMAGES, PREVIEW_DRAWS = 6, 3
# BatchNorm's mode check scores this many training images in eval mode: the split is shuffled, so its first images
# are a sample of every class, and the check costs a bounded pass (the whole split: a third of an epoch).
MODE_CHECK_SAMPLES = 512
EpochCallback = Callable[[dict, float], object]


def run_training(
    model_name: str, params: Params, paths: Paths, on_epoch: EpochCallback | None = None
) -> dict[str, float | int | str]:
    """Train one model (resuming its checkpoint if a previous run was cut short); returns the last epoch's row.

    `on_epoch` is called with each epoch's row and how long its validation took, once the row is logged and
    checkpointed (`pipeline bench` times epochs with it). Under torchrun every process runs this on its share of
    each batch; only rank 0 writes.
    """
    config = params.model(model_name)
    shard = current_shard()
    with process_group(shard, pick_device(config.train.device)) as device:
        return _train(config, params.seed, paths, device, shard, on_epoch or (lambda row, validation_s: None))


def _train(
    config: ModelConfig, seed: int, paths: Paths, device: torch.device, shard: Shard, on_epoch: EpochCallback
) -> dict:
    settings = config.train
    seed_everything(seed, device)
    meta = load_meta(paths, config.dataset)
    train_set, val_set = load_split(paths, config.dataset, "train"), load_split(paths, config.dataset, "val")
    data = {**meta, "channels": train_set.inputs.shape[-1]}
    model = place(build_for(config.name, config, data), device)
    optimizer = make_optimizer(parameter_groups(model, initial_lr(settings)), settings)
    feed = TrainFeed(train_set, config, seed, device, shard)
    scheduler = make_scheduler(optimizer, settings, len(feed))
    ema = weight_average(model, settings.ema)
    served = model if ema is None else ema.module  # the weights validated, kept and saved
    fingerprint = run_fingerprint(config, seed, split_files(paths, config.dataset, ("train", "val")))
    kept = KeptWeights(settings.keep, settings.monitor)
    checkpoint = Checkpoint(paths.checkpoint(config.name), fingerprint, kept)
    done = checkpoint.restore(model, optimizer, scheduler, ema)
    if not same_everywhere(done, device):
        raise PipelineError(
            f"the processes would resume {config.name} from different epochs, since the machines' "
            f"{paths.checkpoint(config.name).parent}/ differ: put it on a filesystem they share, or delete "
            f"{paths.checkpoint(config.name).name}* there on every machine to start over"
        )
    trained = wrap(model, shard, device)
    stepping = Stepping(
        optimizer, scheduler, Normalization.from_meta(meta), device, settings.amp, penalty_for(trained, settings),
        _class_weights(settings, train_set, meta, device), settings.label_smoothing,
        mixer_for(mixup=settings.mixup, cutmix=settings.cutmix, mix_prob=settings.mix_prob,
                  num_classes=len(meta["classes"]), seed=seed, rank=shard.rank),
        ema,
    )
    run = _Run(config, seed, meta, shard, stepping)
    processes = f" x{shard.world}" if shard.world > 1 else ""
    with _live(paths, config.name, shard) as live, tqdm(
        total=settings.epochs * len(feed), initial=done * len(feed), desc=f"train {config.name} ({device}{processes})",
        unit="batch", disable=None if shard.is_main else True,
    ) as bar:
        if live and run.augments_images:
            live.log_image("augmentation.png", _augmentation_preview(config, seed, train_set))
        for row in checkpoint.history if live else ():
            _log(live, row)
        for epoch in range(done + 1, settings.epochs + 1):
            fine_tune_epoch(model, config.arch_args, epoch)
            row = run.epoch(epoch, trained, served, feed, val_set, bar)
            checkpoint.history.append(row)
            kept.offer(served, checkpoint.history)
            if live:
                _log(live, row)
                checkpoint.save(model, optimizer, scheduler, ema)
            on_epoch(row, run.validation_s)
            bar.set_postfix(epoch=epoch, loss=f"{row['train/loss']:.3f}", val_acc=f"{row['val/acc']:.3f}")
        if not live:
            return checkpoint.history[-1]
        chosen = chosen_row(checkpoint.history, settings.keep, settings.monitor)
        kept.restore_into(served)
        summary = _summarise(live, checkpoint.history, chosen, f"{config.name} on {config.dataset}")
        if has_batchnorm(served):
            summary["bn_check"] = run.mode_check(served, train_set, chosen)
            live.summary["bn_check"] = summary["bn_check"]
    save_model(paths.model_file(config.name), served, config, data, seed, int(chosen["epoch"]))
    checkpoint.remove()
    return {**checkpoint.history[-1], **summary, "resumed_from_epoch": done, "device": str(device)}


def _class_weights(
    settings: TrainParams, train_set: SplitArrays, meta: dict, device: torch.device
) -> torch.Tensor | None:
    """`train.class_weights: auto`: the training loss weighs each class by its inverse frequency in the training
    split, so that an imbalanced dataset's small classes count as much as its large ones; `none`: plain mean."""
    if settings.class_weights == "none":
        return None
    return inverse_frequency(torch.from_numpy(train_set.labels), len(meta["classes"])).to(device)


def _live(paths: Paths, model_name: str, shard: Shard) -> contextlib.AbstractContextManager[Live | None]:
    """DVCLive for the process that writes (rank 0); nothing for the others."""
    if not shard.is_main:
        return contextlib.nullcontext()
    return Live(str(paths.train_dir(model_name)), dvcyaml=None, save_dvc_exp=False)



class _Run:
    """What stays fixed across the epochs of one training run."""

    def __init__(self, config: ModelConfig, seed: int, meta: dict, shard: Shard, stepping: Stepping) -> None:
        self.config, self.seed, self.shard, self.stepping = config, seed, shard, stepping
        self.device, self.normalization = stepping.device, stepping.normalization
        self.augments_images = meta.get("kind", "images") == "images"  # a table's rows are not augmented
        self.validation_s = 0.0  # wall time of the last epoch's validation pass

    def epoch(
        self, epoch: int, model: nn.Module, served: nn.Module, feed: TrainFeed, val_set: SplitArrays, bar: tqdm
    ) -> dict[str, float]:
        """Train one epoch of `model` (wrapped for torchrun) and measure `served` (the model itself, or the
        moving average of its weights) on the validation split; returns the epoch's row of the history.

        Dropout draws from (seed, epoch, rank) alone, as the feed's order and augmentation do, so a resumed run
        repeats the epoch exactly."""
        settings = self.config.train
        torch.manual_seed(derived_seed(self.seed, epoch, self.shard.rank))
        fit = train_one_epoch(model, feed.epoch(epoch), feed.real_counts(), self.stepping, epoch, bar)
        started = time.perf_counter()
        val = measure(served, val_set, settings.batch_size, self.device, self.normalization, settings.amp, self.shard)
        self.validation_s = time.perf_counter() - started  # measure's results are on the host: the device is done
        return {
            "epoch": epoch,
            "train/loss": fit.loss,
            "train/acc": fit.accuracy,
            "train/penalty": fit.penalty,
            **{f"train/{key}": value for key, value in fit.confidence.items()},
            "val/loss": val.loss,
            "val/acc": val.accuracy,
            **{f"val/{key}": value for key, value in val.confidence.items()},
            "lr": fit.lr,
        }

    def mode_check(self, model: nn.Module, train_set: SplitArrays, last: dict[str, float]) -> dict[str, float | bool]:
        """The training split's first MODE_CHECK_SAMPLES images in eval mode (no augmentation) beside the kept
        epoch's train-mode figures."""
        settings = self.config.train
        sample = SplitArrays(train_set.inputs[:MODE_CHECK_SAMPLES], train_set.labels[:MODE_CHECK_SAMPLES])
        scores = measure(model, sample, settings.batch_size, self.device, self.normalization, settings.amp)
        return mode_gap(
            {"acc": last["train/acc"], "loss": last["train/loss"]}, {"acc": scores.accuracy, "loss": scores.loss}
        )



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


def _summarise(live: Live, history: list[dict[str, float]], chosen: dict[str, float], title: str) -> dict:
    """The kept epoch's validation figures as the run's summary (`best` in metrics.json), and the curves."""
    live.summary["best"] = {"epoch": chosen["epoch"], "val/acc": chosen["val/acc"], "val/loss": chosen["val/loss"]}
    live.log_image("learning_curves.png", learning_curves(history, title))
    return {"best": live.summary["best"]}
