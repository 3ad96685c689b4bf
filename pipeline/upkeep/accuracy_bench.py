"""Command `bench-accuracy`: the wall time a model's train stage takes to reach given test accuracies, its speed,
and the share of the machine's arithmetic it uses.

The model trains with the real train stage (`train()` writing into a scratch folder: the one training loop). After
every epoch, once the stage has checkpointed it, the weights the recipe scores (the moving average's under
`train.ema`) are read back from that checkpoint and scored on the dataset's **test** split, with the test-time
augmentation of the model's evaluate stage (`evaluate.tta`). As in airbench, this is a benchmark, not model
selection: the test split only says when a target was first reached, it chooses no epoch and no setting, and the
scoring passes are timed apart and left out of the wall time. The wall time starts with the stage, its start-up
included (loading the data, building the model, the first epoch's warm-up), as is its own validation pass.

The share of the machine's arithmetic: the FLOP of one training step per image (forward and backward through the
stage's `train_step`, as torch's `FlopCounterMode` counts them: the matrix products and convolutions, not the
elementwise work, normalisation or the optimiser's update) times the training images per second (an epoch's wall
time less its validation pass, the median of the epochs after the first) is the FLOP/s training achieves. Divided
by the FLOP/s of a large fp32 matrix product on the same device, in the same process (so with the same torch
threads), timed at the start of the run and again at its end, it is the share of the machine's arithmetic the
training uses: a ratio of two figures measured in the same run, which holds on a machine whose speed drifts. Under
bf16 autocast on a GPU (`train.amp`) the step's products run in bf16, faster than fp32, and the share may pass 1.
"""

import copy
import itertools
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from pipeline.analysis.measure import measure
from pipeline.config.params import Params
from pipeline.core.atomic import write_json
from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths
from pipeline.core.runtime import pick_device
from pipeline.core.torchfile import read_torch_file
from pipeline.data.store import SplitArrays, load_meta, load_split
from pipeline.inference.tta import with_tta
from pipeline.stages.evaluate import BATCH_SIZE as EVALUATE_BATCH_SIZE
from pipeline.models.pretrained import stage_weights
from pipeline.stages.train import build_training, train_step
from pipeline.training.checkpoints import CheckpointFile
from pipeline.training.recipe import TrainingRecipe
from pipeline.upkeep.train_bench import (
    model_ready,
    run_stage,
    scratch_folder,
    seconds,
    synchronize,
)

TARGETS = (0.85, 0.90, 0.93, 0.94)  # the issue's; airbench's headline target is 0.94
MATMUL_SIZE = 2048  # square fp32 matrices: 17.2 GFLOP a product, large enough to run at the machine's full rate
MATMUL_SECONDS = 1.0  # each timing of the product (at the start of the run and at its end)
MATMUL_GROUP_SECONDS = 0.1  # products timed together: one GPU product is too short to time alone


@dataclass(frozen=True)
class EpochEnd:
    """Where the run stood after an epoch: seconds since the stage started (scoring left out), its validation
    pass's seconds, and the test accuracy of the weights the recipe scores."""

    epoch: int
    wall_s: float
    validation_s: float
    test_acc: float


def bench_accuracy(
    model_name: str,
    params: Params,
    paths: Paths,
    targets: Sequence[float] = TARGETS,
    epochs: int | None = None,
    out: Path | None = None,
) -> dict:
    """Train one model with the train stage for `epochs` (default: its own), scoring it on the test split after
    every epoch; returns the time to each target accuracy, the speed and the share of the machine's arithmetic,
    and writes them to `out` (default metrics/bench/<model>.accuracy.json)."""
    config = params.model(model_name)
    device = pick_device(config.train.device)
    train_set, test_set = load_split(paths, config.dataset, "train"), load_split(paths, config.dataset, "test")
    model, feed, recipe = build_training(
        config, params.seed, load_meta(paths, config.dataset), train_set, device, weights=stage_weights(paths, config)
    )
    flop_per_image = training_flop_per_image(model, recipe, next(model_ready(feed, recipe.normalization)))
    matmul_start = matmul_rates(device)
    with scratch_folder(paths, config.dataset) as scratch:
        clock = AccuracyClock(device, lambda: checkpointed_test_accuracy(
            scratch.checkpoint(model_name), model, recipe, test_set, config.evaluate.tta))
        run_stage(model_name, params, scratch, epochs or config.train.epochs, clock.epoch_done)
    matmul_end = matmul_rates(device)
    images = sum(feed.real_counts())
    images_per_s = training_images_per_s(clock.ends, images)
    achieved, machine = flop_per_image * images_per_s, statistics.median(matmul_start + matmul_end)
    figures = {
        "model": model_name,
        "dataset": config.dataset,
        "input_shape": list(train_set.inputs.shape[1:]),
        "device": str(device),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "batch_size": config.train.batch_size,
        "train_images": images,
        "test_images": len(test_set.labels),
        "tta": config.evaluate.tta,
        "epochs": len(clock.ends),
        "targets": time_to_targets(clock.ends, targets),
        "final_test_acc": clock.ends[-1].test_acc,
        "images_per_s": images_per_s,
        "train_flop_per_image": flop_per_image,
        "achieved_gflops": achieved / 1e9,
        "matmul_gflops": machine / 1e9,
        "matmul_gflops_start": statistics.median(matmul_start) / 1e9,
        "matmul_gflops_end": statistics.median(matmul_end) / 1e9,
        "share": achieved / machine,
        "scoring_s": clock.scoring_s,
        "history": [asdict(end) for end in clock.ends],
    }
    write_json(out or accuracy_bench_file(paths, model_name), figures)
    return figures


def accuracy_bench_file(paths: Paths, model_name: str) -> Path:
    """Where `pipeline bench-accuracy MODEL` writes by default: metrics/bench/<model>.accuracy.json, beside
    `pipeline bench`'s figures."""
    return paths.bench_file(model_name).with_name(f"{model_name}.accuracy.json")


def parse_targets(text: str) -> tuple[float, ...]:
    """`--targets`: comma-separated test accuracies between 0 and 1, in increasing order once parsed."""
    try:
        targets = sorted({float(part) for part in text.split(",")})
    except ValueError:
        targets = []
    if not targets or not all(0 < target <= 1 for target in targets):
        raise PipelineError(f"--targets: {text!r} is not a list of test accuracies between 0 and 1, e.g. 0.85,0.9")
    return tuple(targets)


def training_flop_per_image(
    model: nn.Module, recipe: TrainingRecipe, batch: tuple[torch.Tensor, torch.Tensor]
) -> float:
    """The FLOP of one training step per image of `batch`, counted by torch's `FlopCounterMode` through the stage's
    own `train_step` (forward, loss, backward, update) on copies of the model and its recipe, which are left as
    they were. Only the matrix products and convolutions count, as in any FLOP/s figure of a network."""
    inputs, labels = batch
    model_copy, recipe_copy = copy.deepcopy((model, recipe))  # together, so the copied optimiser steps the copy
    model_copy.train()
    with FlopCounterMode(display=False) as counter:
        train_step(model_copy, recipe_copy, inputs, labels)
    return counter.get_total_flops() / len(labels)


def matmul_rates(device: torch.device) -> list[float]:
    """FLOP/s of a MATMUL_SIZE-square fp32 matrix product on `device`, repeated for about MATMUL_SECONDS in groups
    of about MATMUL_GROUP_SECONDS (after one product to warm up): what the machine's arithmetic runs at now."""
    left, right = (torch.randn(MATMUL_SIZE, MATMUL_SIZE, device=device) for _ in range(2))
    group = max(1, round(MATMUL_GROUP_SECONDS / seconds(device, lambda: left @ right)))
    flop = 2 * MATMUL_SIZE**3 * group
    rates, spent = [], 0.0
    while spent < MATMUL_SECONDS:
        took = seconds(device, lambda: [left @ right for _ in range(group)])
        rates.append(flop / took)
        spent += took
    return rates


def checkpointed_test_accuracy(
    checkpoint: Path, model: nn.Module, recipe: TrainingRecipe, test: SplitArrays, tta: str
) -> float:
    """The test accuracy of the weights the stage checkpointed last, as the evaluate stage measures it (the weights
    the recipe scores, under `tta`), loaded into the bench's own `model` and `recipe`, not the stage's."""
    saved = CheckpointFile.model_validate(read_torch_file(checkpoint, "checkpoint"))
    model.load_state_dict(saved.model)
    if recipe.ema is not None:
        recipe.ema.load_state_dict(saved.state_of("ema"))
    scored = with_tta(recipe.scored(model), tta)
    return measure(scored, test, EVALUATE_BATCH_SIZE, recipe.device, recipe.normalization).accuracy


class AccuracyClock:
    """The train stage's epoch callback: notes each epoch's end, then scores it (`score`), the scoring timed apart
    and taken out of the wall time; the clock starts when it is made, just before the stage."""

    def __init__(self, device: torch.device, score: Callable[[], float]) -> None:
        self.device, self.score = device, score
        self.ends: list[EpochEnd] = []
        self.scoring_s = 0.0
        synchronize(device)
        self.started = time.perf_counter()

    def epoch_done(self, row: dict, validation_s: float) -> None:
        """At the end of an epoch (row logged, checkpoint written): its time, then its test accuracy."""
        synchronize(self.device)
        now = time.perf_counter()
        test_acc = self.score()
        self.ends.append(EpochEnd(int(row["epoch"]), now - self.started - self.scoring_s, validation_s, test_acc))
        self.scoring_s += time.perf_counter() - now


def training_images_per_s(ends: list[EpochEnd], images: int) -> float:
    """Training images per second: `images` (an epoch's) over the median epoch's wall time less its validation pass,
    of the epochs after the first (the first carries the stage's start-up)."""
    if len(ends) < 2:
        raise PipelineError(
            f"the train stage ran {len(ends)} epoch: training speed is timed over the epochs after the first, so "
            "--epochs must be at least 2 (and train.patience or train.stop_after must not end the run sooner)"
        )
    spans = [end.wall_s - before.wall_s - end.validation_s for before, end in itertools.pairwise(ends)]
    return images / statistics.median(spans)


def time_to_targets(ends: list[EpochEnd], targets: Sequence[float]) -> list[dict]:
    """For each target accuracy, the first epoch whose test accuracy reached it and the wall time then (both None
    when none did)."""
    reached = []
    for target in targets:
        first = next((end for end in ends if end.test_acc >= target), None)
        reached.append({
            "target": target,
            "epoch": first.epoch if first else None,
            "wall_s": first.wall_s if first else None,
        })
    return reached


def accuracy_bench_header(targets: Sequence[float]) -> list[str]:
    """The columns of the table: the model, its data, speed, arithmetic and the time to each target."""
    return [
        "model", "data", "images/s", "GFLOP/s achieved", "matmul GFLOP/s", "share", "final test acc",
        *(f"to {target * 100:g}%" for target in targets),
    ]


def accuracy_bench_row(figures: dict) -> list[str]:
    """One model's figures as the table's cells (`accuracy_bench_header`), as printed and as in the docs."""
    shape = "x".join(str(side) for side in figures["input_shape"])
    times = [
        "not reached" if reached["epoch"] is None else f"{reached['wall_s']:,.1f} s (epoch {reached['epoch']})"
        for reached in figures["targets"]
    ]
    return [
        f"`{figures['model']}`",
        f"{figures['dataset']} {shape}, {figures['train_images']:,} train / {figures['test_images']:,} test",
        f"{figures['images_per_s']:,.0f}",
        f"{figures['achieved_gflops']:,.1f}",
        f"{figures['matmul_gflops']:,.1f}",
        f"**{figures['share']:.1%}**",
        f"{figures['final_test_acc']:.1%} (epoch {figures['epochs']})",
        *times,
    ]


def accuracy_bench_table(figures: dict) -> str:
    """The figures as a markdown table of one row, under a line saying what ran: as printed."""
    header = accuracy_bench_header([reached["target"] for reached in figures["targets"]])
    title = (
        f"{figures['model']} on {figures['device']} ({figures['torch_threads']} torch threads, torch "
        f"{figures['torch']}): batch {figures['batch_size']}, {figures['epochs']} epochs, test scored with tta "
        f"{figures['tta']} after each ({figures['scoring_s']:.1f} s, left out of the times); "
        f"{figures['train_flop_per_image'] / 1e6:,.1f} MFLOP a training image; matmul "
        f"{figures['matmul_gflops_start']:,.1f} GFLOP/s at the start, {figures['matmul_gflops_end']:,.1f} at the end"
    )
    rows = [header, ["---"] * len(header), accuracy_bench_row(figures)]
    return "\n".join([title, "", *("| " + " | ".join(row) + " |" for row in rows)])
