"""Command `bench`: how much of the machine the train stage turns into training.

Three figures in training images per second, for one model on its preprocessed dataset, on the device the train
stage would use:
- data: the training feed alone, one epoch: gathering, augmenting and moving batches to the device;
- step: the bare training step (the stage's own `training_step`) on model-ready batches already on the device;
- stage: the real train stage (`train()`, writing into a scratch folder) for 1 + `epochs` epochs, timed epoch by
  epoch: training images per second over all but the first epoch. That is the speed of a long run, with all that
  every epoch does (feeding, augmenting, stepping, validating, logging, checkpointing) and without the one-off
  start and finish (loading, the first epoch's warm-up, plots, saving the model), reported apart as `startup_s`;
and their ratio stage/step, the share of the bare step's speed the pipeline keeps; plus peak memory.
"""

import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from pipeline.atomic import write_json
from pipeline.loader import TrainFeed
from pipeline.models import parameter_groups
from pipeline.params import ModelConfig, Params, parse_params
from pipeline.paths import Paths
from pipeline.preprocess import SplitArrays, load_meta, load_split
from pipeline.runtime import Normalization, model_input, pick_device, place, seed_everything
from pipeline.schedule import initial_lr
from pipeline.train import build_for, make_optimizer, train, training_step

WARMUP_STEPS = 3


def bench(model_name: str, params: Params, paths: Paths, epochs: int = 2, steps: int = 40) -> dict:
    """Measure one model's data, bare-step and train-stage speed (`epochs` epochs; `steps` bare steps); writes the
    figures to metrics/bench/<model>.json and returns them."""
    config = params.model(model_name)
    device = pick_device(config.train.device)
    seed_everything(params.seed, device)
    meta = load_meta(paths, config.dataset)
    train_set = load_split(paths, config.dataset, "train")
    feed = TrainFeed(train_set, config, params.seed, device)
    normalization = Normalization.from_meta(meta)
    images = len(train_set.labels)
    data = images / _seconds(device, lambda: _drain(feed, normalization))
    step = _step_rate(config, {**meta, "channels": train_set.inputs.shape[-1]}, feed, normalization, device, steps)
    clock = _EpochClock(device)
    whole = _seconds(device, lambda: _run_stage(model_name, params, paths, 1 + epochs, clock.tick))
    per_epoch = clock.seconds_per_epoch()
    stage = images / per_epoch
    figures = {
        "model": model_name,
        "dataset": config.dataset,
        "device": str(device),
        "batch_size": config.train.batch_size,
        "train_images": len(train_set.labels),
        "epochs": epochs,
        "data_images_per_s": data,
        "step_images_per_s": step,
        "stage_images_per_s": stage,
        "ratio": stage / step,
        "startup_s": whole - (1 + epochs) * per_epoch,
        "stage_end_to_end_images_per_s": images * (1 + epochs) / whole,
        **_peak_memory(device),
    }
    write_json(paths.bench_file(model_name), figures)
    return figures


def _seconds(device: torch.device, work: Callable[[], object]) -> float:
    """Wall time of `work`, until the device has finished it."""
    _synchronize(device)
    start = time.perf_counter()
    work()
    _synchronize(device)
    return time.perf_counter() - start


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _drain(feed: TrainFeed, normalization: Normalization | None) -> None:
    for raw, _ in feed.epoch(1):
        model_input(raw, normalization)


def _step_rate(
    config: ModelConfig,
    data: dict,
    feed: TrainFeed,
    normalization: Normalization | None,
    device: torch.device,
    steps: int,
) -> float:
    """Images per second of `steps` bare training steps of a fresh model, cycling through ready-made batches."""
    model = place(build_for(config.name, config, data), device)
    optimizer = make_optimizer(parameter_groups(model, initial_lr(config.train)), config.train)
    ready = [(model_input(raw, normalization), labels) for raw, labels in feed.epoch(1)]
    ready = ready[: max(1, len(ready) - 1)]  # the last batch may be short
    model.train()

    def run(count: int) -> None:
        for number in range(count):
            inputs, labels = ready[number % len(ready)]
            training_step(model, optimizer, inputs, labels, config.train.amp)

    run(WARMUP_STEPS)
    return steps * len(ready[0][1]) / _seconds(device, lambda: run(steps))


class _EpochClock:
    """When each epoch of a train stage run ended (its row logged and checkpointed)."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.ends = device, []

    def tick(self, _row: dict) -> None:
        """Note the time an epoch ended, once the device has finished it."""
        _synchronize(self.device)
        self.ends.append(time.perf_counter())

    def seconds_per_epoch(self) -> float:
        """Mean wall time of an epoch after the first."""
        return (self.ends[-1] - self.ends[0]) / (len(self.ends) - 1)


def _run_stage(
    model_name: str, params: Params, paths: Paths, epochs: int, on_epoch: Callable[[dict], object]
) -> None:
    """The train stage for `epochs` epochs on the real preprocessed data, writing into a scratch folder."""
    raw = params.model_dump(mode="json")
    raw["models"][model_name]["epochs"] = epochs
    dataset = params.models[model_name].dataset
    with tempfile.TemporaryDirectory(prefix="pipeline-bench-") as scratch:
        scratch_paths = Paths(Path(scratch))
        scratch_paths.processed_dir(dataset).parent.mkdir(parents=True)
        scratch_paths.processed_dir(dataset).symlink_to(paths.processed_dir(dataset).resolve())
        train(model_name, parse_params(raw), scratch_paths, on_epoch)


def _peak_memory(device: torch.device) -> dict[str, float]:
    """Peak resident memory of this process (and peak GPU memory allocated by torch), in MiB."""
    peaks = {"peak_host_memory_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.type == "cuda":
        peaks["peak_gpu_memory_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return peaks


def render(figures: dict) -> str:
    """The figures as a markdown table, as printed and as pasted into README.md."""
    rows = [
        ("data: feed alone (read, augment, to device)", f"{figures['data_images_per_s']:,.0f} images/s"),
        ("step: bare training step, batches in memory", f"{figures['step_images_per_s']:,.0f} images/s"),
        ("stage: train stage, per epoch, all included", f"{figures['stage_images_per_s']:,.0f} images/s"),
        ("ratio stage / step", f"{figures['ratio']:.2f}"),
        ("stage start and finish, once a run", f"{figures['startup_s']:.1f} s"),
        (
            f"stage end to end, {1 + figures['epochs']} epochs, start and finish included",
            f"{figures['stage_end_to_end_images_per_s']:,.0f} images/s",
        ),
        ("peak host memory (resident)", f"{figures['peak_host_memory_mib']:,.0f} MiB"),
    ]
    if "peak_gpu_memory_mib" in figures:
        rows.append(("peak GPU memory (allocated by torch)", f"{figures['peak_gpu_memory_mib']:,.0f} MiB"))
    title = (
        f"{figures['model']} on {figures['device']}: batch {figures['batch_size']}, "
        f"{figures['train_images']} training images"
    )
    return "\n".join([title, "", "| figure | value |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows)])
