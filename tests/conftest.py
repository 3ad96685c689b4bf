"""Shared fixtures: tiny, valid params, a tiny prepared dataset and tiny CIFAR-10 batches, generated on the fly (no
network, no files)."""

import copy
import os
import shutil
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from hypothesis import settings

from pipeline.config.params import Params, parse_params
from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths
from pipeline.data.classes import Listing
from pipeline.data.raw import SAMPLE_COLUMNS, write_index
from pipeline.data.sources.cifar_official import CACHE_ENV
from pipeline.stages.download import download
from pipeline.stages.preprocess import preprocess
from pipeline.stages.split import split
from pipeline.stages.train import train
from tests.cifar_files import expected_images, random_batches

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """One torch thread in each test process and each process a test starts, unless OMP_NUM_THREADS says otherwise.

    The models here are tiny, so more threads gain nothing, and the xdist workers already share the cores: threads
    contending for the same cores wait on each other (a tiny training run took 36 s on two threads, 3 s on one, on
    a busy two-core machine).
    """
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


# The property tests (test_hostile_inputs.py) set their example counts and deadlines; none keeps a database of
# examples in the working tree, and a failure prints how to reproduce it.
settings.register_profile("suite", database=None, print_blob=True)
settings.load_profile("suite")


@pytest.fixture(autouse=True, scope="session")
def no_waiting_for_the_disk():
    """`os.fsync` returns at once in the test processes: atomic writes still open and sync every file they would
    (`test_atomic.py` checks the calls), but the tests do not wait for the disk, which cost the fast tier about 7 s
    on a shared two-core machine. Processes the tests start (`dvc repro`, the server) sync for real."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "fsync", lambda fd: None)
        yield


TINY: dict[str, Any] = {
    "seed": 7,
    "data": {"catsdogs": {"source": "sample", "path": None, "sample_per_class": 12}},
    "split": {"catsdogs": {"train": 6, "val": 3, "test": 3}},
    "preprocess": {"catsdogs": {"size": 32, "color": "gray", "normalize": False}},
    "aug": {"rotation": 0, "shift": 0, "zoom": 0, "shear": 0, "hflip": 0, "brightness": 0},
    "train": {"epochs": 1, "batch_size": 4, "optimizer": "adam", "lr": 0.001, "device": "cpu"},
    "evaluate": {"tta": "none"},
    "models": {
        "catsdogs_cnn": {"dataset": "catsdogs", "arch": "catsdogs_cnn", "epochs": 2, "dropout": [0.25, 0.25, 0.5]}
    },
}


CIFAR_AUG = {"crop_padding": 4, "hflip": 0.5}
TINY_CIFAR: dict[str, Any] = {
    "data": {"cifar10": {"source": "sample", "path": None, "sample_per_class": 4, "sample_test_per_class": 2}},
    "split": {"cifar10": {"val_fraction": 0.25, "seed": 43, "max_train_per_class": None, "max_test_per_class": None}},
    "preprocess": {"cifar10": {"size": 32, "color": "rgb", "normalize": True}},
    "models": {
        # Two epochs on real data, one on the sample (its budget).
        "cifar_mlp": {
            "dataset": "cifar10", "arch": "mlp", "hidden": [16, 8], "aug": CIFAR_AUG, "epochs": 2, "sample": {"epochs": 1}
        },
        "cifar_cnn": {"dataset": "cifar10", "arch": "cifar_cnn", "widths": [4, 4, 4], "dense": 8, "aug": CIFAR_AUG},
        "cifar_cnn_bn": {
            "dataset": "cifar10",
            "arch": "cifar_cnn",
            "widths": [4, 4, 4],
            "dense": 8,
            "batchnorm": True,
            "dropout": [0.2, 0.3, 0.4, 0.5],
            "aug": CIFAR_AUG,
        },
        "cifar_vgg16": {"dataset": "cifar10", "arch": "vgg16", "pretrained": False, "freeze": False, "head": 8},
        "cifar_resnet18": {"dataset": "cifar10", "arch": "resnet18", "optimizer": "sgd", "lr_schedule": "cosine"},
    },
}


TINY_IRIS: dict[str, Any] = {
    "data": {"iris": {"source": "sklearn"}},
    "split": {"iris": {"train": 30, "val": 10, "test": 10}},
    "preprocess": {"iris": {"normalize": True}},
    "models": {"iris_mlp": {"dataset": "iris", "arch": "mlp", "hidden": [8], "epochs": 3, "batch_size": 5}},
}


def tiny_full() -> dict[str, Any]:
    """Tiny params for all three datasets and all seven models, shaped like the repository's params.yaml."""
    raw = copy.deepcopy(TINY)
    for extra in (TINY_CIFAR, TINY_IRIS):
        for block, entries in copy.deepcopy(extra).items():
            raw[block].update(entries)
    return raw


def tiny_raw(**changes: Any) -> dict[str, Any]:
    """A deep copy of the tiny params with dotted-key changes applied, e.g. tiny_raw(**{"aug.hflip": 0.5})."""
    return changed(copy.deepcopy(TINY), changes)


def changed(raw: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`raw` with dotted-key changes applied in place (`{"aug.hflip": 0.5}`), missing blocks created; returns it."""
    for key, value in changes.items():
        node = raw
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return raw


@pytest.fixture
def tiny_params() -> Params:
    """Valid params small enough that every stage runs in about a second."""
    return parse_params(tiny_raw())


@pytest.fixture
def outside_any_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Work in the test's own folder: DVCLive looks for a DVC/Git repo from the working directory and may report to
    Studio; give it neither."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_STUDIO_OFFLINE", "true")


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    """Pipeline paths rooted in a fresh temporary folder."""
    return Paths(tmp_path)


def prepare(paths: Paths, params: Params, dataset: str) -> Paths:
    """Take `dataset` through download, split and preprocess under `paths`."""
    download(dataset, params.data[dataset], params.seed, paths)
    split(dataset, params.split[dataset], params.seed, paths)
    preprocess(dataset, params.preprocess[dataset], paths)
    return paths


@pytest.fixture
def prepared(paths: Paths, tiny_params: Params) -> Paths:
    """A tiny catsdogs dataset taken through download, split and preprocess."""
    return prepare(paths, tiny_params, "catsdogs")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Paths, dict[str, Any]]:
    """The tiny catsdogs dataset prepared and catsdogs_cnn trained on it with the tiny params, once per test process,
    and the figures `train` returned. Only to read: a test that changes the run takes a copy (`trained`)."""
    root = tmp_path_factory.mktemp("tiny_run")
    params = parse_params(tiny_raw())
    with pytest.MonkeyPatch.context() as patch:  # outside any repo, as `outside_any_repo` says why
        patch.chdir(root)
        patch.setenv("DVC_STUDIO_OFFLINE", "true")
        paths = prepare(Paths(root), params, "catsdogs")
        last = train("catsdogs_cnn", params, paths)
    return paths, last


@pytest.fixture
def trained(tiny_run, tmp_path: Path) -> Paths:
    """A copy of `tiny_run`'s folder in the test's own folder, free to change (train again, evaluate, ...)."""
    return Paths(shutil.copytree(tiny_run[0].root, tmp_path / "run"))


def refusal_writing_nothing_outside(root: Path, inside: Path, action: Callable[[], object]) -> str:
    """The message of the PipelineError that `action` must raise, once checked that no file or folder under `root`
    but outside `inside` was added, removed or changed."""
    before = files_outside(root, inside)
    with pytest.raises(PipelineError) as error:
        action()
    assert files_outside(root, inside) == before
    return str(error.value)


def files_outside(root: Path, inside: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under `root` but not under `inside`, by path."""
    return {
        str(path): path.read_bytes() if path.is_file() else None
        for path in root.rglob("*")
        if not path.is_relative_to(inside)
    }


def repo_params() -> dict[str, Any]:
    """The repository's own params.yaml, parsed as YAML."""
    return yaml.safe_load((REPO / "params.yaml").read_text())


@pytest.fixture
def offline_cifar_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Nothing may reach the network, and the CIFAR-10 cache is a fresh folder, not the user's."""

    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to open a URL")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def cifar_batches() -> dict[str, dict[bytes, object]]:
    """Tiny official CIFAR-10 batches of random pixels and labels (see tests/cifar_files.py)."""
    return random_batches()


@pytest.fixture(scope="module")
def cifar_images(cifar_batches) -> dict[str, np.ndarray]:
    """The RGB image each member of the raw archive made from `cifar_batches` must decode to, by member name."""
    return expected_images(cifar_batches)


def write_raw_index(paths: Paths, dataset: str, classes: tuple[str, ...]) -> None:
    """The raw `index.json` (and an empty `samples.csv`) of an images dataset whose archive a test writes itself."""
    paths.raw_dir(dataset).mkdir(parents=True, exist_ok=True)
    write_index(paths.raw_dir(dataset), "images", Listing("split_folders", [], classes, {}), pd.DataFrame(columns=SAMPLE_COLUMNS))
