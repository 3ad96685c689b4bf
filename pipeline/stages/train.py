"""Stage `train@<model>`: fit one model on its dataset's preprocessed training split.

dvc.yaml runs this file. Read it top to bottom, as torchvision's `references/classification/train.py`: `train`
resolves the model's settings (a key changed since the last run that a more specific key shadows stops it; the
table of every key, its value and where it came from is printed, and saved in metrics/<model>/train/
resolved_params.json for `dvc exp show` and `dvc metrics diff`), builds the model (from the pretrained weights
its `weights@<model>` stage wrote in data/weights/<model>/: nothing is downloaded here), optimiser and feed, resumes
a checkpoint left by a killed run, then `fit` runs the epochs: `train_one_epoch` steps every batch through
`train_step` (forward, loss, `backward()`, the optimiser's step) and `evaluate` scores the validation split. The
helpers live in pipeline/training/, named for what they do: feed (batches), augment and batch_augment, mixing
(MixUp and CutMix), recipe (the optimiser, schedule, penalty and weight average of `train.*`), schedule,
lookahead and whitening (airbench's), compiled (`train.compile`), checkpoints, records (DVCLive), keep (best or
last epoch), stopping (early stopping), fine_tune.

Every command that trains calls `fit`: the audit's folds, `pipeline sanity overfit`, `pipeline lr-find` and
`pipeline bench`, so every `train.*` key applies wherever a model is trained.

On a GPU, steps run in bf16 autocast (`train.amp`); under torchrun (`pipeline train MODEL --nproc N`) the processes
share every batch through DistributedDataParallel and only rank 0 writes. With `train.ema` on, validation, the kept
epoch and the saved model are the moving average's.
"""

import sys
import time
from collections.abc import Callable, Iterable

import torch
from torch import nn
from tqdm import tqdm

from pipeline.analysis.diagnostics import confidence_figures, mode_gap
from pipeline.analysis.measure import measure
from pipeline.config.params import ModelConfig, Params
from pipeline.config.resolution import (
    check_overrides,
    locked_params,
    resolved_keys,
    resolved_record,
    settings_text,
)
from pipeline.config.training import TrainParams
from pipeline.core.distributed import (
    Shard,
    current_shard,
    gathered_uneven,
    process_group,
    same_everywhere,
    summed,
    unwrapped,
    wrap,
)
from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths
from pipeline.core.runtime import (
    Normalization,
    derived_seed,
    mixed_precision,
    model_input,
    pick_device,
    place,
    seed_everything,
)
from pipeline.data.store import (
    DatasetMeta,
    SplitArrays,
    load_meta,
    load_split,
    split_files,
)
from pipeline.models.file import save_model
from pipeline.models.outputs import loss, probabilities
from pipeline.models.pretrained import StateDict, stage_weights
from pipeline.models.registry import build_model, has_batchnorm, parameter_groups
from pipeline.stages.command import stage_command
from pipeline.training.checkpoints import Checkpoint, run_fingerprint
from pipeline.training.compiled import compiled
from pipeline.training.feed import TrainFeed
from pipeline.training.fine_tune import fine_tune_epoch
from pipeline.training.keep import KeptWeights, chosen_row
from pipeline.training.recipe import (
    TrainingRecipe,
    batchnorm_rate,
    make_optimizer,
    recipe_for,
)
from pipeline.training.records import recorder
from pipeline.training.schedule import initial_lr
from pipeline.training.stopping import should_stop
from pipeline.training.whitening import whiten_first_conv, whitening_bias_epoch

# BatchNorm's mode check scores this many training images in eval mode: the split is shuffled, so its first images
# are a sample of every class, and the check costs a bounded pass (the whole split: a third of an epoch).
MODE_CHECK_SAMPLES = 512
# Called after each epoch with its row of the history and how long its validation took; True ends the training.
EpochCallback = Callable[[dict, float], bool | None]


def train(model_name: str, params: Params, paths: Paths, on_epoch: EpochCallback | None = None) -> dict:
    """Train one model (resuming its checkpoint if a previous run was cut short); returns the last epoch's row with
    the run's summary. `on_epoch` is called after each epoch, once it is logged and checkpointed (`pipeline bench`
    times epochs with it). Under torchrun every process runs this on its share of each batch; only rank 0 writes."""
    config = params.model(model_name)
    train_params = config.train
    shard = current_shard()
    # What runs is what the table says: a changed key that a more specific one shadows stops the stage here.
    check_overrides(params, model_name, locked_params(paths.lock_file(), f"train@{model_name}"))
    resolved = resolved_keys(params, model_name)
    with process_group(shard, pick_device(train_params.device)) as device:
        # Data, model, optimiser and recipe, seeded so that the same params and seed start from the same weights.
        meta = load_meta(paths, config.dataset)
        train_set, val_set = load_split(paths, config.dataset, "train"), load_split(paths, config.dataset, "val")
        model, feed, recipe = build_training(
            config, params.seed, meta, train_set, device, shard, weights=stage_weights(paths, config)
        )
        if shard.is_main:  # once the set-up has worked: a failure stays one line
            print(settings_text(params, model_name, resolved), file=sys.stderr, flush=True)

        # Resume: the newest checkpoint of this very run (params, seed, data and code), if one is left.
        kept = KeptWeights(train_params.keep, train_params.monitor)
        fingerprint = run_fingerprint(config, params.seed, split_files(paths, config.dataset, ("train", "val")))
        checkpoint = Checkpoint(paths.checkpoint(config.name), fingerprint, kept, train_params.stop_after)
        done = checkpoint.restore({"model": model, **recipe.states()})
        _check_same_start(done, paths, config, device)
        if done and shard.is_main:
            print(_resuming_line(config, done, checkpoint), file=sys.stderr, flush=True)

        # The epochs: every process trains; the writer (rank 0) logs, checkpoints and saves, the others do not.
        scored = recipe.scored(model)
        with recorder(paths, config, checkpoint, shard) as records, tqdm(
            total=train_params.epochs * len(feed), initial=done * len(feed), unit="batch",
            desc=_progress_title(config, device, shard), disable=None if shard.is_main else True,
        ) as bar:
            records.start(train_set, meta.is_table, params.seed, resolved_record(resolved))

            def epoch_done(row: dict, validation_s: float) -> None:
                kept.keep_if_chosen(scored, checkpoint.history)
                records.epoch_done(row, {"model": model, **recipe.states()})
                if on_epoch is not None:
                    on_epoch(row, validation_s)

            fit(wrap(model, shard, device), recipe, feed, range(done + 1, train_params.epochs + 1), checkpoint.history,
                config=config, seed=params.seed, val_set=val_set, shard=shard, bar=bar, on_epoch=epoch_done)

            # Finish: the kept epoch's weights, their summary, the model file; the checkpoints go.
            if not shard.is_main:
                return checkpoint.history[-1]
            chosen = chosen_row(checkpoint.history, train_params.keep, train_params.monitor)
            kept.restore_into(scored)
            title = f"{config.name} on {config.dataset}"
            summary = records.summarise(chosen, title, _stopped_at(checkpoint, train_params))
            if has_batchnorm(scored):
                summary["bn_check"] = records.bn_check(_mode_check(scored, train_set, chosen, recipe, train_params))
    save_model(
        paths.model_file(config.name), scored, config, meta, input_channels(train_set), params.seed,
        int(chosen["epoch"]), summary.get("stopped_at"),
    )
    checkpoint.remove()
    return {**checkpoint.history[-1], **summary, "resumed_from_epoch": done, "device": str(device)}


def build_training(
    config: ModelConfig, seed: int, meta: DatasetMeta, train_set: SplitArrays, device: torch.device,
    shard: Shard = Shard(), weights: StateDict | None = None,
) -> tuple[nn.Module, TrainFeed, TrainingRecipe]:
    """Seed everything, then a fresh model on `device` (from the pretrained `weights` when given: `stage_weights`),
    its batches and its recipe (optimiser, schedule, penalty, mixing, weight average): what every command that
    trains starts from."""
    seed_everything(seed, device)
    model = place(fresh_model(config, meta, input_channels(train_set), weights), device)
    normalization = Normalization.from_stats(meta)
    if config.train.whiten:
        whiten_first_conv(model, train_set, normalization)
    groups = batchnorm_rate(model, parameter_groups(model, initial_lr(config.train)), config.train)
    optimizer = make_optimizer(groups, config.train)
    feed = TrainFeed(train_set, config, seed, device, shard)
    recipe = recipe_for(
        config, model, optimizer, train_set, len(feed), normalization,
        num_classes=len(meta.classes), seed=seed, rank=shard.rank, device=device,
    )
    return model, feed, recipe


def fit(
    model: nn.Module,
    recipe: TrainingRecipe,
    feed: TrainFeed,
    epochs: Iterable[int],
    history: list[dict],
    *,
    config: ModelConfig,
    seed: int,
    val_set: SplitArrays | None = None,
    shard: Shard = Shard(),
    bar: tqdm | None = None,
    on_epoch: EpochCallback | None = None,
) -> list[dict]:
    """Train `model` (wrapped for torchrun) for `epochs`, appending each epoch's row to `history`: its training
    figures and, with a `val_set`, the validation figures of the weights the recipe scores. The run ends early when
    `train.stop_after` or early stopping (`train.patience`) says so, or when `on_epoch` returns True. With
    `train.compile`, the steps go through the compiled model, compiled before the first epoch.

    Dropout draws from (seed, epoch, rank) alone, as the feed's order and augmentation do, so a resumed run repeats
    the epoch exactly."""
    epochs = list(epochs)
    model = compiled(model, config.train, recipe, feed, lambda epoch: prepare_epoch(model, config, epoch), epochs)
    for epoch in epochs:
        if should_stop(history, config.train):
            break
        prepare_epoch(model, config, epoch)
        torch.manual_seed(derived_seed(seed, epoch, shard.rank))
        figures = train_one_epoch(model, recipe, feed.epoch(epoch), feed.real_counts(), epoch, bar)
        lr = figures.pop("lr")
        row, validation_s = {"epoch": epoch, **figures}, 0.0
        if val_set is not None:
            started = time.perf_counter()
            row |= evaluate(recipe.scored(unwrapped(model)), val_set, recipe, config.train.batch_size, shard)
            validation_s = time.perf_counter() - started  # evaluate's results are on the host: the device is done
        row["lr"] = lr  # logged after the validation figures
        history.append(row)
        stop = on_epoch(row, validation_s) if on_epoch is not None else None
        if bar is not None:
            bar.set_postfix(epoch=epoch, loss=f"{row['train/loss']:.3f}",
                            **({"val_acc": f"{row['val/acc']:.3f}"} if "val/acc" in row else {}))
        if stop:
            break
    return history


def prepare_epoch(model: nn.Module, config: ModelConfig, epoch: int) -> None:
    """What trains in epoch `epoch` (from 1): fine-tuned features frozen or not (`fine_tune`), the whitening layer's
    bias trained or frozen (`train.whiten_bias_epochs`)."""
    fine_tune_epoch(unwrapped(model), config.arch_args, epoch)
    whitening_bias_epoch(unwrapped(model), config.train, epoch)


def train_one_epoch(
    model: nn.Module,
    recipe: TrainingRecipe,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    real_counts: list[int],
    epoch: int,
    bar: tqdm | None = None,
) -> dict[str, float]:
    """One pass over the epoch's batches, minimising data loss plus the `l1`/`l2` weight penalty; returns the
    epoch's training figures (`train/loss`, `train/acc`, `train/penalty`, the true-class confidence) and `lr`.

    Data loss and penalty are reported apart, so losses stay comparable between runs with different penalties. The
    loss is the one minimised (smoothed and mixed targets, when on); a mixed image counts as right when the model
    predicts the label with the larger weight in it. The figures add up on the device and reach the host once, at
    the end: no step waits for the GPU. Under torchrun the sampler pads the last batches with repeated images so
    that every process takes as many steps; they train like the others but are left out of the figures
    (`real_counts`: the real images of each batch).
    """
    model.train()
    sums = torch.zeros(3, device=recipe.device)  # data loss, penalty, correct
    seen_probabilities, seen_labels, lr = [], [], 0.0
    for number, ((raw, labels), real) in enumerate(zip(batches, real_counts, strict=True)):
        inputs, targets = model_input(raw, recipe.normalization), labels
        if recipe.mixer is not None:
            inputs, targets, labels = recipe.mixer(inputs, labels, epoch, number)
        logits, batch_loss, penalty = train_step(model, recipe, inputs, targets)
        lr = recipe.optimizer.param_groups[-1]["lr"]
        if recipe.scheduler is not None:
            recipe.scheduler.step()
        if recipe.ema is not None:
            recipe.ema.update_parameters(unwrapped(model))
        if recipe.lookahead is not None:
            recipe.lookahead.step(unwrapped(model))
        if real < len(labels):
            logits, labels, targets = logits[:real], labels[:real], targets[:real]
            batch_loss = loss(logits.float(), targets, recipe.class_weights, recipe.smoothing)
        batch_probabilities = probabilities(logits.float())
        correct = (batch_probabilities.argmax(1) == labels).sum()
        sums += torch.stack([batch_loss * len(labels), penalty * len(labels), correct])
        seen_probabilities.append(batch_probabilities)
        seen_labels.append(labels)
        if bar is not None:
            bar.update()
    all_probabilities = gathered_uneven(torch.cat(seen_probabilities)).cpu().numpy()
    all_labels = gathered_uneven(torch.cat(seen_labels)).cpu().numpy()
    mean_loss, mean_penalty, accuracy = (summed(sums) / len(all_labels)).tolist()
    confidence = confidence_figures(all_probabilities, all_labels)
    return {
        "train/loss": mean_loss,
        "train/acc": accuracy,
        "train/penalty": mean_penalty,
        **{f"train/{key}": value for key, value in confidence.items()},
        "lr": lr,
    }


def train_step(
    model: nn.Module, recipe: TrainingRecipe, inputs: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One optimisation step, in bf16 autocast on a CUDA device that has it if `recipe.amp`; returns the logits, the
    data loss (weighted by class when the recipe has class weights, against targets smoothed by its label
    smoothing; `targets` may be soft, see `outputs.loss`) and the weight penalty, detached, left on the device."""
    recipe.optimizer.zero_grad(set_to_none=True)
    with mixed_precision(inputs.device, recipe.amp):
        logits = model(inputs)
    data_loss = loss(logits.float(), targets, recipe.class_weights, recipe.smoothing)
    penalty = recipe.penalty(data_loss)
    (data_loss + penalty).backward()
    recipe.optimizer.step()
    return logits.detach(), data_loss.detach(), penalty.detach()


def evaluate(
    model: nn.Module, split: SplitArrays, recipe: TrainingRecipe, batch_size: int, shard: Shard = Shard()
) -> dict[str, float]:
    """The model in eval mode on a whole split (shared out between the processes), `batch_size` images at a time:
    `val/loss`, `val/acc` and the true-class confidence."""
    scores = measure(model, split, batch_size, recipe.device, recipe.normalization, recipe.amp, shard)
    return {"val/loss": scores.loss, "val/acc": scores.accuracy,
            **{f"val/{key}": value for key, value in scores.confidence.items()}}


def fresh_model(
    config: ModelConfig, meta: DatasetMeta, channels: int, weights: StateDict | None = None
) -> nn.Module:
    """The model, freshly initialised (from the pretrained `weights` when given); a failure names the model's params
    block."""
    try:
        return build_model(
            config.arch, config.arch_args, in_channels=channels, size=meta.size, num_classes=len(meta.classes),
            weights=weights, origin=f"weights@{config.name}",
        )
    except PipelineError as exc:
        raise PipelineError(f"models.{config.name}: {exc}") from None


def input_channels(split: SplitArrays) -> int:
    """An image split's channels (N, H, W, C), or a table split's features (N, F): the model's input width."""
    return split.inputs.shape[-1]


def _mode_check(
    model: nn.Module, train_set: SplitArrays, chosen: dict, recipe: TrainingRecipe, train_params: TrainParams
) -> dict[str, float | bool]:
    """BatchNorm's train/eval check: the training split's first MODE_CHECK_SAMPLES images in eval mode (no
    augmentation) beside the kept epoch's train-mode figures."""
    sample = SplitArrays(train_set.inputs[:MODE_CHECK_SAMPLES], train_set.labels[:MODE_CHECK_SAMPLES])
    scores = measure(model, sample, train_params.batch_size, recipe.device, recipe.normalization, train_params.amp)
    return mode_gap(
        {"acc": chosen["train/acc"], "loss": chosen["train/loss"]}, {"acc": scores.accuracy, "loss": scores.loss}
    )


def _stopped_at(checkpoint: Checkpoint, train_params: TrainParams) -> int | None:
    """With early stopping on or `stop_after` set, the last epoch the run trained (the planned last one when it did
    not stop early)."""
    if train_params.patience is None and train_params.stop_after is None:
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


def _resuming_line(config: ModelConfig, done: int, checkpoint: Checkpoint) -> str:
    """The line a resumed run prints: the model, the epochs already done and the checkpoint they come from."""
    return (
        f"resuming {config.name} after epoch {done} of {config.train.epochs}, from {checkpoint.resumed_from} "
        "(a run cut short)"
    )


def _progress_title(config: ModelConfig, device: torch.device, shard: Shard) -> str:
    processes = f" x{shard.world}" if shard.world > 1 else ""
    return f"train {config.name} ({device}{processes})"


def train_named(model_name: str, params: Params) -> dict | None:
    """Train the model named, as its command does; what it prints: the last epoch's row from the process that
    writes the model, None from the other torchrun processes."""
    result = train(model_name, params, Paths())
    return result if current_shard().is_main else None


if __name__ == "__main__":
    stage_command(train_named)
