"""Command `bench`: how much of the machine the train stage turns into training.

Three figures in training images per second, for one model on its preprocessed dataset, on the device the train
stage would use:
- data: the training feed alone, one epoch: gathering, augmenting and moving batches to the device;
- step: the bare training step (the stage's own `train_step`, on a model of its own, without the recipe's extras) on model-ready batches
  already on the device, an epoch's worth of steps (or `steps`) at a time;
- stage: the real train stage (`train()`, writing into a scratch folder) for 1 + `epochs` epochs, timed epoch by
  epoch after the first: training images per second of an epoch's wall time less its validation pass. That is
  the training speed of a long run, with all the work around the steps (feeding, augmenting, per-step figures,
  logging, checkpointing) and without the one-off start and finish (loading, the first epoch's warm-up, plots,
  saving the model), reported apart with the first epoch as `first_epoch_and_start_s`;
and their ratio stage/step, the share of the bare step's speed the pipeline keeps; plus peak memory.

The validation pass is work a bare loop does not do: it is timed apart (`validation_s`, an epoch's share of it),
and `stage_with_validation_images_per_s` counts it in. The bare steps are timed between the stage's epochs, so a
machine whose speed drifts (a shared or virtual one) moves both figures alike; repeated timings are summarised by
their median, which a moment of load from elsewhere moves least.
"""

import contextlib
import resource
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from pipeline.config.params import Params, parse_params
from pipeline.core.atomic import write_json
from pipeline.core.paths import Paths
from pipeline.core.runtime import Normalization, model_input, pick_device
from pipeline.data.store import load_meta, load_split
from pipeline.models.pretrained import stage_weights
from pipeline.stages.train import EpochCallback, build_training, train, train_step
from pipeline.training.feed import TrainFeed
from pipeline.training.recipe import TrainingRecipe

WARMUP_STEPS = 3


def bench(model_name: str, params: Params, paths: Paths, epochs: int = 3, steps: int | None = None) -> dict:
    """Measure one model's data, bare-step and train-stage speed (`epochs` timed epochs; `steps` bare steps a
    timing, default an epoch's worth); writes the figures to metrics/bench/<model>.json and returns them."""
    config = params.model(model_name)
    device = pick_device(config.train.device)
    meta = load_meta(paths, config.dataset)
    model, feed, recipe = build_training(
        config, params.seed, meta, load_split(paths, config.dataset, "train"), device,
        weights=stage_weights(paths, config),
    )
    images = sum(feed.real_counts())  # an epoch's images: fewer than the split's under `train.steps_per_epoch`
    ready: list[tuple[torch.Tensor, torch.Tensor]] = []
    data = images / seconds(device, lambda: ready.extend(model_ready(feed, recipe.normalization)))
    bare = _BareSteps(model, recipe.optimizer, config.train.amp, ready, device, steps)
    clock = _Clock(device, bare)
    with scratch_folder(paths, config.dataset) as scratch:
        whole = seconds(device, lambda: run_stage(model_name, params, scratch, 1 + epochs, clock.tick)) - clock.bare_s
    per_epoch, validation = statistics.median(clock.epochs), statistics.median(clock.validations)
    stage, step = images / (per_epoch - validation), statistics.median(clock.step_rates)
    figures = {
        "model": model_name,
        "dataset": config.dataset,
        "device": str(device),
        "batch_size": config.train.batch_size,
        "train_images": images,
        "epochs": epochs,
        "data_images_per_s": data,
        "step_images_per_s": step,
        "stage_images_per_s": stage,
        "ratio": stage / step,
        "validation_s": validation,
        "validation_share": validation / per_epoch,
        "stage_with_validation_images_per_s": images / per_epoch,
        "first_epoch_and_start_s": whole - sum(clock.epochs),
        "stage_end_to_end_images_per_s": images * (1 + epochs) / whole,
        **_peak_memory(device),
    }
    write_json(paths.bench_file(model_name), figures)
    return figures


def seconds(device: torch.device, work: Callable[[], object]) -> float:
    """Wall time of `work`, until the device has finished it (a GPU runs asynchronously: a bare clock would stop
    when the work is queued)."""
    synchronize(device)
    start = time.perf_counter()
    work()
    synchronize(device)
    return time.perf_counter() - start


def synchronize(device: torch.device) -> None:
    """Wait until a CUDA device has done all the work queued on it, so that a clock read next sees it done."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def model_ready(feed: TrainFeed, normalization: Normalization | None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The feed's first epoch as model inputs on the device: what the data figure times, the bare steps reuse and
    `pipeline bench-accuracy` counts a step's arithmetic on."""
    for raw, labels in feed.epoch(1):
        yield model_input(raw, normalization), labels


class _BareSteps:
    """Bare training steps of a model of their own (not the stage's) through ready-made batches on the device."""

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        amp: bool,
        ready: list[tuple[torch.Tensor, torch.Tensor]],
        device: torch.device,
        steps: int | None,
    ) -> None:
        self.model = model
        self.recipe = TrainingRecipe(optimizer=optimizer, scheduler=None, normalization=None, device=device, amp=amp)
        self.ready = ready[: max(1, len(ready) - 1)]  # the last batch may be short
        self.steps, self.device = steps or len(self.ready), device
        self._run(WARMUP_STEPS)

    def images_per_s(self) -> float:
        """Images per second of one timing (an epoch's worth of steps, or `steps`)."""
        return self.steps * len(self.ready[0][1]) / seconds(self.device, lambda: self._run(self.steps))

    def _run(self, count: int) -> None:
        self.model.train()
        for number in range(count):
            inputs, labels = self.ready[number % len(self.ready)]
            train_step(self.model, self.recipe, inputs, labels)


class _Clock:
    """Times a train stage run epoch by epoch (after the first), with a timing of bare steps after each epoch."""

    def __init__(self, device: torch.device, bare: _BareSteps) -> None:
        self.device, self.bare = device, bare
        self.epochs, self.validations, self.step_rates = [], [], []
        self.bare_s, self.resumed = 0.0, None

    def tick(self, _row: dict, validation_s: float) -> None:
        """At the end of an epoch (row logged, checkpoint written): note its time, then time the bare steps."""
        synchronize(self.device)
        now = time.perf_counter()
        if self.resumed is not None:
            self.epochs.append(now - self.resumed)
            self.validations.append(validation_s)
        self.step_rates.append(self.bare.images_per_s())
        self.resumed = time.perf_counter()
        self.bare_s += self.resumed - now


@contextlib.contextmanager
def scratch_folder(paths: Paths, dataset: str) -> Iterator[Paths]:
    """A temporary repository whose preprocessed `dataset` is a link to the real one: where a bench runs the train
    stage, so that the real models, metrics and checkpoints stay as they are. Removed on exit."""
    with tempfile.TemporaryDirectory(prefix="pipeline-bench-") as scratch:
        scratch_paths = Paths(Path(scratch))
        scratch_paths.processed_dir(dataset).parent.mkdir(parents=True)
        scratch_paths.processed_dir(dataset).symlink_to(paths.processed_dir(dataset).resolve())
        yield scratch_paths


def run_stage(model_name: str, params: Params, scratch: Paths, epochs: int, on_epoch: EpochCallback) -> None:
    """The train stage (`train()`, the one training loop) for `epochs` epochs, writing into `scratch` (a
    `scratch_folder`); `on_epoch` is called after each epoch, once it is logged and checkpointed. The epochs are
    the model's own and, where it has one, its sample budget's, which would otherwise win on the embedded sample."""
    raw = params.model_dump(mode="json")
    block = raw["models"][model_name]
    block["epochs"] = epochs
    if "epochs" in block["sample"]:
        block["sample"]["epochs"] = epochs
    train(model_name, parse_params(raw), scratch, on_epoch)


def _peak_memory(device: torch.device) -> dict[str, float]:
    """Peak resident memory of this process (and peak GPU memory allocated by torch), in MiB."""
    peaks = {"peak_host_memory_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.type == "cuda":
        peaks["peak_gpu_memory_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return peaks


def training_bench_table(figures: dict) -> str:
    """The figures as a markdown table, as printed and as pasted into docs/explanation/performance.md."""
    rows = [
        ("data: feed alone (read, augment, to device)", f"{figures['data_images_per_s']:,.0f} images/s"),
        ("step: bare training step, batches in memory", f"{figures['step_images_per_s']:,.0f} images/s"),
        ("stage: train stage, an epoch less its validation pass", f"{figures['stage_images_per_s']:,.0f} images/s"),
        ("ratio stage / step", f"{figures['ratio']:.2f}"),
        (
            "validation pass, an epoch's share",
            f"{figures['validation_s']:.2f} s, {figures['validation_share']:.0%}",
        ),
        ("stage, an epoch with its validation pass", f"{figures['stage_with_validation_images_per_s']:,.0f} images/s"),
        ("stage's first epoch with its start and finish", f"{figures['first_epoch_and_start_s']:.1f} s"),
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
