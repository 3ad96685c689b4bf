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

import time
from collections.abc import Callable

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from pipeline.analysis.diagnostics import mode_gap
from pipeline.analysis.measure import measure
from pipeline.config.params import ModelConfig, Params
from pipeline.config.training import TrainParams
from pipeline.core.distributed import Shard, current_shard, process_group, same_everywhere, wrap
from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths
from pipeline.core.runtime import derived_seed, pick_device
from pipeline.data.store import SplitArrays, load_split, split_files
from pipeline.models.file import save_model
from pipeline.models.outputs import inverse_frequency
from pipeline.models.registry import has_batchnorm
from pipeline.training.checkpoints import Checkpoint, run_fingerprint
from pipeline.training.epoch import Stepping, train_one_epoch, weight_average
from pipeline.training.feed import TrainFeed
from pipeline.training.fine_tune import fine_tune_epoch
from pipeline.training.keep import KeptWeights, chosen_row
from pipeline.training.mixing import mixer_for
from pipeline.training.records import recorder
from pipeline.training.run import TrainingSetup, build_run
from pipeline.training.schedule import make_scheduler
from pipeline.training.step import penalty_for
from pipeline.training.stopping import should_stop

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
    # Set-up: the model and optimizer, the data feed, the schedule and the weights' moving average.
    settings = config.train
    setup = build_run(config, seed, paths, device)
    val_set = load_split(paths, config.dataset, "val")
    feed = TrainFeed(setup.train_set, config, seed, device, shard)
    scheduler = make_scheduler(setup.optimizer, settings, len(feed))
    ema = weight_average(setup.model, settings.ema)
    scored = setup.model if ema is None else ema.module  # the weights validated, kept and saved

    # Resume: the newest checkpoint of this very run (params, seed, data and code), if one is left.
    kept = KeptWeights(settings.keep, settings.monitor)
    fingerprint = run_fingerprint(config, seed, split_files(paths, config.dataset, ("train", "val")))
    checkpoint = Checkpoint(paths.checkpoint(config.name), fingerprint, kept, settings.stop_after)
    done = checkpoint.restore(setup.model, setup.optimizer, scheduler, ema)
    _check_same_start(done, paths, config, device)

    # The epoch loop: every process trains; the writer (rank 0) logs, checkpoints and saves, the others do not.
    trained = wrap(setup.model, shard, device)
    epochs = EpochRunner(config, seed, shard, _stepping(config, seed, setup, trained, scheduler, ema, shard, device))
    with recorder(paths, config, checkpoint, shard) as records, tqdm(
        total=settings.epochs * len(feed), initial=done * len(feed), desc=_progress_title(config, device, shard),
        unit="batch", disable=None if shard.is_main else True,
    ) as bar:
        records.start(setup.train_set, setup.meta.is_table, seed)
        for epoch in range(done + 1, settings.epochs + 1):
            if should_stop(checkpoint.history, settings):
                break
            fine_tune_epoch(setup.model, config.arch_args, epoch)
            row, validation_s = epochs.run(epoch, trained, scored, feed, val_set, bar)
            checkpoint.history.append(row)
            kept.offer(scored, checkpoint.history)
            records.epoch_done(row, setup.model, setup.optimizer, scheduler, ema)
            on_epoch(row, validation_s)
            bar.set_postfix(epoch=epoch, loss=f"{row['train/loss']:.3f}", val_acc=f"{row['val/acc']:.3f}")

        # Finish: the kept epoch's weights, their summary, the model file; the checkpoints go.
        if not shard.is_main:
            return checkpoint.history[-1]
        chosen = chosen_row(checkpoint.history, settings.keep, settings.monitor)
        kept.restore_into(scored)
        summary = records.summarise(chosen, f"{config.name} on {config.dataset}", _stopped_at(checkpoint, settings))
        if has_batchnorm(scored):
            summary["bn_check"] = records.bn_check(epochs.mode_check(scored, setup.train_set, chosen))
    save_model(
        paths.model_file(config.name), scored, config, setup.meta, setup.channels, seed, int(chosen["epoch"]),
        summary.get("stopped_at"),
    )
    checkpoint.remove()
    return {**checkpoint.history[-1], **summary, "resumed_from_epoch": done, "device": str(device)}


def _stopped_at(checkpoint: Checkpoint, settings: TrainParams) -> int | None:
    """With early stopping on or `stop_after` set, the last epoch the run trained (the planned last one when it did
    not stop early)."""
    if settings.patience is None and settings.stop_after is None:
        return None
    return int(checkpoint.history[-1]["epoch"])


def _check_same_start(done: int, paths: Paths, config: ModelConfig, device: torch.device) -> None:
    """Under torchrun, every process must resume from the same epoch (their checkpoint folders may differ)."""
    if not same_everywhere(done, device):
        raise PipelineError(
            f"the processes would resume {config.name} from different epochs, since the machines' "
            f"{paths.checkpoint(config.name).parent}/ differ: put it on a filesystem they share, or delete "
            f"{paths.checkpoint(config.name).name}* there on every machine to start over"
        )


def _stepping(
    config: ModelConfig,
    seed: int,
    setup: TrainingSetup,
    trained: nn.Module,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    ema: AveragedModel | None,
    shard: Shard,
    device: torch.device,
) -> Stepping:
    """How each batch of this run is taken (see `Stepping`)."""
    settings, classes = config.train, len(setup.meta.classes)
    return Stepping(
        optimizer=setup.optimizer,
        scheduler=scheduler,
        normalization=setup.normalization,
        device=device,
        amp=settings.amp,
        penalty=penalty_for(trained, settings),
        class_weights=_class_weights(settings, setup.train_set, classes, device),
        smoothing=settings.label_smoothing,
        mixer=mixer_for(mixup=settings.mixup, cutmix=settings.cutmix, mix_prob=settings.mix_prob,
                        num_classes=classes, seed=seed, rank=shard.rank),
        ema=ema,
    )


def _progress_title(config: ModelConfig, device: torch.device, shard: Shard) -> str:
    processes = f" x{shard.world}" if shard.world > 1 else ""
    return f"train {config.name} ({device}{processes})"


def _class_weights(
    settings: TrainParams, train_set: SplitArrays, classes: int, device: torch.device
) -> torch.Tensor | None:
    """`train.class_weights: auto`: the training loss weighs each class by its inverse frequency in the training
    split, so that an imbalanced dataset's small classes count as much as its large ones; `none`: plain mean."""
    if settings.class_weights == "none":
        return None
    return inverse_frequency(torch.from_numpy(train_set.labels), classes).to(device)


class EpochRunner:
    """One epoch of training and validation at a time, with what stays fixed across a run's epochs."""

    def __init__(self, config: ModelConfig, seed: int, shard: Shard, stepping: Stepping) -> None:
        self.config, self.seed, self.shard, self.stepping = config, seed, shard, stepping

    def run(
        self, epoch: int, model: nn.Module, scored: nn.Module, feed: TrainFeed, val_set: SplitArrays, bar: tqdm
    ) -> tuple[dict[str, float], float]:
        """Train one epoch of `model` (wrapped for torchrun) and measure `scored` (the model itself, or the
        moving average of its weights) on the validation split; returns the epoch's row of the history and the
        wall time of its validation pass.

        Dropout draws from (seed, epoch, rank) alone, as the feed's order and augmentation do, so a resumed run
        repeats the epoch exactly."""
        settings, stepping = self.config.train, self.stepping
        torch.manual_seed(derived_seed(self.seed, epoch, self.shard.rank))
        fit = train_one_epoch(model, feed.epoch(epoch), feed.real_counts(), stepping, epoch, bar)
        started = time.perf_counter()
        val = measure(scored, val_set, settings.batch_size, stepping.device, stepping.normalization, settings.amp,
                      self.shard)
        validation_s = time.perf_counter() - started  # measure's results are on the host: the device is done
        row = {
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
        return row, validation_s

    def mode_check(self, model: nn.Module, train_set: SplitArrays, last: dict[str, float]) -> dict[str, float | bool]:
        """The training split's first MODE_CHECK_SAMPLES images in eval mode (no augmentation) beside the kept
        epoch's train-mode figures."""
        settings, stepping = self.config.train, self.stepping
        sample = SplitArrays(train_set.inputs[:MODE_CHECK_SAMPLES], train_set.labels[:MODE_CHECK_SAMPLES])
        scores = measure(model, sample, settings.batch_size, stepping.device, stepping.normalization, settings.amp)
        return mode_gap(
            {"acc": last["train/acc"], "loss": last["train/loss"]}, {"acc": scores.accuracy, "loss": scores.loss}
        )
