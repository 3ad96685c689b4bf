"""`train.compile`: the training steps through `torch.compile` (TorchInductor), on the CPU and on a GPU.

The model is compiled whole (shapes fixed: one graph for the full batch and one for an epoch's shorter last batch)
and warmed up before the first epoch: a forward and backward pass per batch shape, in each `requires_grad` state the
run will train in (a whitening bias or fine-tuned features frozen later), on training images, with the weights, the
BatchNorm statistics and the gradients put back afterwards, so the run trains exactly as it would have. The
warm-up's time is the compile time, printed and recorded apart from the epochs' (`pipeline bench-repro`'s log).
Validation and the saved model use the plain module.

Inductor keeps what it compiled in its cache, `$TORCHINDUCTOR_CACHE_DIR`, by default `$PIPELINE_CACHE_DIR/inductor`
(`~/.cache/image-pipeline/inductor`), outside the repository so that `dvc exp run --temp` and every stage run
share it: a re-run with the same model and shapes loads the kernels instead of compiling them again.
"""

import copy
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import nn

from pipeline.config.training import TrainParams
from pipeline.core.runtime import mixed_precision, model_input
from pipeline.core.stage_times import note_compile
from pipeline.training.feed import TrainFeed
from pipeline.training.recipe import TrainingRecipe

CACHE_ENV, PIPELINE_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR", "PIPELINE_CACHE_DIR"


def inductor_cache() -> Path:
    """Where inductor keeps compiled kernels between runs: $TORCHINDUCTOR_CACHE_DIR, else under the pipeline's cache."""
    if CACHE_ENV in os.environ:
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get(PIPELINE_CACHE_ENV) or Path.home() / ".cache" / "image-pipeline"
    return Path(base) / "inductor"


def compiled(
    model: nn.Module,
    train_params: TrainParams,
    recipe: TrainingRecipe,
    feed: TrainFeed,
    prepare_epoch: Callable[[int], None],
    epochs: Iterable[int],
) -> nn.Module:
    """The model to train the epochs with: `model` itself, or with `train.compile` its compiled module, warmed up
    (compiled) for every batch shape of `feed` and every state `prepare_epoch` leaves the model in, at the first and
    the last of `epochs`; the compile time is printed and noted."""
    epochs = list(epochs)
    if not train_params.compile or not epochs:
        return model
    os.environ.setdefault(CACHE_ENV, str(inductor_cache()))
    module = torch.compile(model, dynamic=False)
    print(f"compiling the training step (torch.compile, inductor cache {os.environ[CACHE_ENV]})",
          file=sys.stderr, flush=True)
    started = time.perf_counter()
    _warm_up(module, model, recipe, feed, prepare_epoch, sorted({epochs[0], epochs[-1]}))
    seconds = time.perf_counter() - started
    note_compile(seconds)
    print(f"compiled in {seconds:.1f} s (not counted in the epochs' time)", file=sys.stderr, flush=True)
    return module


def _warm_up(
    module: nn.Module,
    model: nn.Module,
    recipe: TrainingRecipe,
    feed: TrainFeed,
    prepare_epoch: Callable[[int], None],
    epochs: list[int],
) -> None:
    """A forward and backward pass of `module` per batch shape and epoch state, then `model` as it was."""
    saved = copy.deepcopy(model.state_dict())
    module.train()
    for epoch in epochs:
        prepare_epoch(epoch)
        for inputs in feed.shaped_examples():
            with mixed_precision(recipe.device, recipe.amp):
                logits = module(model_input(inputs, recipe.normalization))
            logits.float().sum().backward()
    recipe.optimizer.zero_grad(set_to_none=True)
    model.load_state_dict(saved)
