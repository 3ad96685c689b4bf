"""Command `lr-find`: the learning-rate range test (Leslie Smith; fastai's `lr_find`).

A fresh model takes one training step per learning rate, the rate rising exponentially from 1e-7 to 10; the loss,
smoothed by an exponential moving average (bias-corrected, beta 0.98), first falls, then explodes. The test stops
once the smoothed loss is above four times its minimum. Two suggestions, as fastai makes them, over the recorded
points less the first tenth of the planned steps and the last five:

- steep: where the smoothed loss falls fastest against log(lr);
- valley: fastai's `valley` (ESRI's suggester): the longest run of falling losses (the longest decreasing
  subsequence), and the point `int(n/3) + int(n/6)` into it: about halfway, although fastai's docs say "roughly 2/3".

Not a stage: it writes metrics/<model>/lr_find.png beside the stages' outputs, and no stage imports it.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from pipeline.analysis.plots import save_png
from pipeline.config.params import ModelConfig, Params
from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths
from pipeline.core.runtime import pick_device
from pipeline.data.store import load_meta, load_split
from pipeline.models.pretrained import stage_weights
from pipeline.stages.train import build_training, fit
from pipeline.onboarding.params_editing import append_entry, load_document, save_document
from pipeline.training.schedule import initial_lr

START_LR, END_LR = 1e-7, 10.0
BETA = 0.98  # the smoothing of the loss
DIVERGE = 4.0  # stop once the smoothed loss is above this many times its minimum
SKIP_END = 5  # fastai leaves out the last five points (and the first tenth of the planned steps)


@dataclass(frozen=True)
class RangeTest:
    """The rates stepped at, the raw and the smoothed loss at each, how many steps were planned, and whether the
    test stopped early because the loss diverged."""

    lrs: np.ndarray
    raw: np.ndarray
    losses: np.ndarray
    planned: int
    diverged: bool


@dataclass(frozen=True)
class Suggestions:
    """fastai's two suggestions: the steepest descent and the valley; each a rate and its smoothed loss."""

    steep: tuple[float, float]
    valley: tuple[float, float]


def rates(steps: int, start: float = START_LR, end: float = END_LR) -> np.ndarray:
    """`steps` learning rates rising exponentially from `start` to `end` (both included)."""
    if steps < 2:
        raise PipelineError(f"--steps {steps}: the range test needs at least 2 steps")
    return start * (end / start) ** (np.arange(steps) / (steps - 1))


def range_test(step: Callable[[float], float], lrs: np.ndarray, beta: float = BETA, diverge: float = DIVERGE) -> RangeTest:
    """Call `step(lr)` (one training step at that rate, returning its loss) for each rate in turn, smoothing the
    losses (an exponential moving average, bias-corrected); stop after the step whose smoothed loss is not finite
    or above `diverge` times the lowest so far."""
    average, raw, smoothed, diverged = 0.0, [], [], False
    for count, lr in enumerate(lrs, start=1):
        raw.append(step(float(lr)))
        average = beta * average + (1 - beta) * raw[-1]
        smoothed.append(average / (1 - beta**count))
        if not math.isfinite(smoothed[-1]) or smoothed[-1] > diverge * min(smoothed):
            diverged = True
            break
    return RangeTest(np.asarray(lrs[: len(raw)], float), np.array(raw), np.array(smoothed), len(lrs), diverged)


def steep(lrs: np.ndarray, losses: np.ndarray) -> int:
    """The index of the rate where the loss falls fastest against log(lr) (the left end of the steepest segment)."""
    return int(np.argmin(np.diff(losses) / np.diff(np.log(lrs))))


def valley(losses: np.ndarray) -> int:
    """fastai's `valley`: the index `int(n/3) + int(n/6)` into the longest decreasing run of losses (a longest
    strictly decreasing subsequence, ending at its first possible end), starting one before it as fastai does."""
    longest = np.ones(len(losses), int)
    end = 0
    for i in range(1, len(losses)):
        before = longest[:i][losses[:i] > losses[i]]
        longest[i] = 1 + before.max() if before.size else 1
        if longest[i] > longest[end]:
            end = i
    start = end - longest[end]
    third = (end - start) / 3
    return min(max(start + int(third) + int(third / 2), 0), len(losses) - 1)


def suggest(test: RangeTest) -> Suggestions:
    """Both suggestions over the recorded points, less the first tenth of the planned steps and the last five."""
    keep = slice(test.planned // 10, len(test.losses) - SKIP_END)
    lrs, losses = test.lrs[keep], test.losses[keep]
    finite = np.isfinite(losses)
    if not finite.all():
        lrs, losses = lrs[: np.argmin(finite)], losses[: np.argmin(finite)]
    if len(losses) < 3:
        raise PipelineError(
            f"--steps {test.planned}: the loss diverged after {len(test.losses)} steps, too few to suggest a rate; "
            "raise --steps"
        )
    at_steep, at_valley = steep(lrs, losses), valley(losses)
    return Suggestions(
        (float(lrs[at_steep]), float(losses[at_steep])), (float(lrs[at_valley]), float(losses[at_valley]))
    )


def lr_find(model_name: str, params: Params, paths: Paths, steps: int = 100) -> RangeTest:
    """The range test on a fresh model of `model_name`, trained by the train stage's own `fit` with its recipe
    (optimiser, penalty, class weights, label smoothing, augmentation, mixing), one batch of a fresh shuffle a step
    at the test's rate (groups with their own rate keep their ratio to it) in place of the schedule's."""
    config = _one_batch_epochs(params.model(model_name), steps)
    device = pick_device(config.train.device)
    meta, train_set = load_meta(paths, config.dataset), load_split(paths, config.dataset, "train")
    model, feed, recipe = build_training(
        config, params.seed, meta, train_set, device, weights=stage_weights(paths, config)
    )
    recipe = replace(recipe, scheduler=None)
    first = initial_lr(config.train)
    scales = [group["initial_lr"] / first for group in recipe.optimizer.param_groups]
    history: list[dict] = []

    def step(lr: float) -> float:
        for group, scale in zip(recipe.optimizer.param_groups, scales, strict=True):
            group["lr"] = lr * scale
        fit(model, recipe, feed, [len(history) + 1], history, config=config, seed=params.seed)
        return history[-1]["train/loss"]

    return range_test(step, rates(steps))


def _one_batch_epochs(config: ModelConfig, steps: int) -> ModelConfig:
    """The model's config as `steps` epochs of one batch each (a fresh shuffle every step), trained to the end."""
    one_batch = {"epochs": steps, "steps_per_epoch": 1, "patience": None, "stop_after": None}
    return replace(config, train=config.train.model_copy(update=one_batch))


def figure(test: RangeTest, found: Suggestions, title: str) -> Figure:
    """The smoothed loss against the learning rate (log scale), the two suggestions marked."""
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(6, 4), constrained_layout=True)
    shown = slice(0, max(len(test.losses) - SKIP_END, 2))
    axis.plot(test.lrs[shown], test.losses[shown], color="C0", label="smoothed loss")
    for (lr, loss), name, color in ((found.steep, "steep", "C3"), (found.valley, "valley", "C2")):
        axis.plot([lr], [loss], "o", color=color, markersize=8, label=f"{name}: {lr:.2e}")
    axis.set_xscale("log")
    axis.set_xlabel("learning rate")
    axis.set_ylabel("loss")
    axis.grid(alpha=0.3)
    axis.legend()
    axis.set_title(title)
    return fig


def find_and_plot(model_name: str, params: Params, paths: Paths, steps: int = 100) -> tuple[Suggestions, str]:
    """Run the range test, save the plot (`Paths.lr_find_plot`) and return the suggestions with the text to print."""
    test = lr_find(model_name, params, paths, steps)
    found = suggest(test)
    path = paths.lr_find_plot(model_name)
    save_png(figure(test, found, f"{model_name}: learning-rate range test"), path)
    stopped = (
        f"stopped at lr {test.lrs[-1]:.2e}: the smoothed loss passed {DIVERGE:g}x its minimum"
        if test.diverged
        else f"ran all {test.planned} steps without the loss diverging; the suggestions may be low"
    )
    text = "\n".join([
        f"{model_name}: {len(test.losses)} of {test.planned} steps, lr {START_LR:g} to {END_LR:g}; {stopped}",
        f"SuggestedLRs(valley={found.valley[0]:.2e}, steep={found.steep[0]:.2e})",
        f"  valley: {found.valley[0]:.2e} (smoothed loss {found.valley[1]:.4f}), the --apply choice",
        f"  steep:  {found.steep[0]:.2e} (smoothed loss {found.steep[1]:.4f}), where the loss falls fastest",
        f"plot: {path}",
    ])
    return found, text


def apply(params_file: Path, params: Params, model_name: str, lr: float) -> str:
    """Write `lr` (to 3 significant figures) as `models.<model>.lr` in `params_file`, keeping its comments, order
    and formatting, once the result validates; the file is replaced atomically. Returns what changed. A rate found
    on the embedded sample goes into the model's `sample` budget when it has one, not into the real set-up."""
    config = params.model(model_name)
    if isinstance(config.train.lr_schedule, list):
        raise PipelineError(
            f"--apply: models.{model_name} has a step list as lr_schedule, whose steps set the rate; `lr` would be "
            "unused: edit the steps' lr instead"
        )
    document = load_document(params_file)
    block = (document.get("models") or {}).get(model_name)
    if not isinstance(block, dict):
        raise PipelineError(f"--apply: {params_file} has no block models.{model_name} to write lr into")
    key = f"models.{model_name}.lr"
    if params.trains_on_sample(model_name) and isinstance(block.get("sample"), dict):
        block, key = block["sample"], f"models.{model_name}.sample.lr"
    value = float(f"{lr:.3g}")
    append_entry(block, "lr", value)
    save_document(params_file, document, f"--apply: {key} was not written")
    return f"{key}: {config.train.lr:g} -> {value:g} in {params_file}"
