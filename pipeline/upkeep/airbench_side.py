"""Command `bench-airbench`: airbench94 itself (the `airbench` package, Keller Jordan's, a dev dependency) trained
on this pipeline's preprocessed CIFAR-10 arrays, beside `pipeline bench`'s figures for `cifar_best` (its net).

airbench's `CifarLoader(path, train)` reads `<path>/train.pt` or `<path>/test.pt`: a `torch.save`d dict of uint8
images (N, 32, 32, 3), int64 labels (N,) and the class names, the layout of torchvision's CIFAR10 (which it downloads
when the file is missing). The preprocess stage stores the same layout (`pipeline.data.store`), so the files are the
train and test splits as they are. airbench's `train94` reads its test set from `./cifar10/test.pt`, a path it does
not take as an argument: it runs in a scratch folder holding both files. Its net is fp16 on `.cuda()`: no CPU run.

Timed: `train94` after airbench's own one-step warm-up (`warmup94`), until the GPU has finished, then the test
accuracy of the trained net with airbench's test-time augmentation (`tta_level` 2: mirror and translate).
"""

import contextlib
import io
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths
from pipeline.data.store import DatasetMeta, SplitArrays, load_meta, load_split

AIRBENCH_FOLDER = "cifar10"  # where airbench's train94 looks for its test set, from the current directory
SPLIT_FILES = {"train": "train.pt", "test": "test.pt"}  # CifarLoader's file for train=True and train=False
SIDE, CHANNELS, CLASSES = 32, 3, 10  # airbench94's net: 32x32 RGB in, 10 logits out


def check_fits_airbench(meta: DatasetMeta, dataset: str) -> None:
    """Refuse a dataset airbench94's net cannot take (it is CIFAR-10's: 32x32 RGB, 10 classes), naming what to
    change, before any file is written."""
    wrong = [
        f"{what} {have} (airbench94 needs {need})"
        for what, have, need in (
            ("image_size", meta.size, SIDE), ("color", meta.color, "rgb"), ("classes", len(meta.classes), CLASSES)
        )
        if have != need
    ]
    if wrong:
        raise PipelineError(
            f"dataset {dataset!r}: {', '.join(wrong)}; give bench-airbench a CIFAR-10-shaped dataset "
            f"(preprocess.{dataset}.image_size: {SIDE}, color: rgb)"
        )


def airbench_split(split: SplitArrays, classes: list[str]) -> dict[str, Any]:
    """One preprocessed split as airbench's CifarLoader reads it: uint8 images (N, H, W, C), int64 labels, the
    class names in label order."""
    return {
        "images": torch.from_numpy(split.inputs.copy()),  # the memory-mapped array, read whole
        "labels": torch.from_numpy(split.labels.astype("int64")),
        "classes": list(classes),
    }


def write_airbench_files(paths: Paths, dataset: str, folder: Path) -> Path:
    """The dataset's train and test splits written as airbench's `train.pt` and `test.pt` into `folder`/cifar10
    (which it returns): the path to give `airbench.CifarLoader`."""
    meta = load_meta(paths, dataset)
    check_fits_airbench(meta, dataset)
    target = folder / AIRBENCH_FOLDER
    target.mkdir(parents=True, exist_ok=True)
    for split_name, file_name in SPLIT_FILES.items():
        torch.save(airbench_split(load_split(paths, dataset, split_name), meta.classes), target / file_name)
    return target


def run_airbench94(paths: Paths, dataset: str) -> dict[str, Any]:
    """Train airbench94 (its own code and hyperparameters) on the dataset's train split on the GPU and score it on
    the test split; returns the wall time of training and the test accuracy, with what they were measured on."""
    if not torch.cuda.is_available():
        raise PipelineError(
            "bench-airbench needs a CUDA GPU (airbench94 runs its net in fp16 with .cuda()) and torch sees none; "
            "run it on a machine with one (`bash scripts/gpu_check.sh` runs it there)"
        )
    airbench, hyp = _airbench()
    with tempfile.TemporaryDirectory(prefix="pipeline-airbench-") as scratch:
        loader_path = str(write_airbench_files(paths, dataset, Path(scratch)))
        with contextlib.chdir(scratch):
            train = airbench.CifarLoader(loader_path, train=True, batch_size=hyp["opt"]["batch_size"], aug=hyp["aug"],
                                         altflip=True)
            with contextlib.redirect_stdout(io.StringIO()):  # the warm-up's progress line
                airbench.warmup94(train)
            seconds, model = _timed(lambda: airbench.train94(train, verbose=False))
            test = airbench.CifarLoader(loader_path, train=False, batch_size=2000)
            accuracy = airbench.evaluate(model, test, tta_level=hyp["net"]["tta_level"])
    epochs = hyp["opt"]["train_epochs"]
    return {
        "dataset": dataset,
        "device": torch.cuda.get_device_name(),
        "airbench_version": _version(),
        "train_images": len(train.images),
        "test_images": len(test.images),
        "batch_size": hyp["opt"]["batch_size"],
        "epochs": epochs,
        "train_s": seconds,
        "epoch_s": seconds / epochs,
        "test_accuracy": accuracy,
        "tta_level": hyp["net"]["tta_level"],
    }


def _airbench() -> tuple[Any, dict[str, Any]]:
    """The airbench package and airbench94's hyperparameters, or an error saying how to install it."""
    try:
        import airbench
        from airbench.lib_airbench94 import hyp
    except ImportError:
        raise PipelineError(
            "bench-airbench needs the airbench package, a dev dependency: run `uv sync` (without --no-dev)"
        ) from None
    return airbench, hyp


def _version() -> str:
    """The installed airbench's version, for the record."""
    from importlib.metadata import version

    return version("airbench")


def _timed(work: Callable[[], Any]) -> tuple[float, Any]:
    """Wall seconds of `work()` until the GPU has finished it, and what it returned."""
    torch.cuda.synchronize()
    start = time.perf_counter()
    result = work()
    torch.cuda.synchronize()
    return time.perf_counter() - start, result
