"""Shared fixtures: tiny, valid params, a tiny prepared dataset and tiny CIFAR-10 batches, generated on the fly (no
network, no files)."""

import os
import shutil
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import settings

from pipeline.config.params import Params, parse_params
from pipeline.core.paths import Paths
from pipeline.data.sources.cifar_official import CACHE_ENV
from pipeline.stages.train import train
from tests.helpers.cifar_files import expected_images, random_batches
from tests.helpers.datasets import prepare
from tests.helpers.params import tiny_raw
from tests.helpers.workspace import stop_warm_server

def pytest_configure(config: pytest.Config) -> None:
    """One torch thread in each test process and each process a test starts, unless OMP_NUM_THREADS says otherwise.

    The models here are tiny, so more threads gain nothing, and the xdist workers already share the cores: threads
    contending for the same cores wait on each other (a tiny training run took 36 s on two threads, 3 s on one, on
    a busy two-core machine).
    """
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The end-to-end tests are the files tests/test_e2e*.py: they carry the `e2e` marker (`pytest -m e2e` runs
    them alone), the unit tests do not."""
    for item in items:
        if item.path.name.startswith("test_e2e"):
            item.add_marker(pytest.mark.e2e)


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


@pytest.fixture(autouse=True, scope="session")
def warm_server_ends():
    """The warm server that the tests' first `dvc` command started (`tests.helpers.workspace.warm_env`), if one
    did, ends with the session."""
    yield
    stop_warm_server()


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




@pytest.fixture(scope="session")
def postgres_url() -> Any:
    """The URL of a real PostgreSQL server for the session (tests.helpers.postgres), or the test skipped."""
    from tests.helpers.postgres import postgres_server

    with postgres_server() as url:
        yield url
