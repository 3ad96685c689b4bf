"""kill -9 in the middle of each stage that writes outputs, then the same stage again: the run recovers.

`dvc repro` re-runs a stage whose outputs are missing by running its `cmd:`; these tests run that command,
`python -m pipeline <stage> <name>`, themselves (once killed, once again) in a temporary workspace, with this
checkout's code. Each stage is killed once its output has visibly started (a partial temporary copy, a first
checkpoint), and the re-run must end with the outputs an uninterrupted run gives, and nothing half-written left.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml

from pipeline.config.params import parse_params
from pipeline.core.paths import Paths
from pipeline.stages.download import download
from pipeline.stages.preprocess import preprocess
from pipeline.stages.split import split
from pipeline.stages.train import train
from tests.helpers.params import REPO, tiny_raw

# Big enough that writing the raw archive and decoding val/test take a visible moment, small enough to stay quick.
FAULT_PARAMS = tiny_raw(
    **{
        "data.catsdogs.sample_per_class": 220,
        "split.catsdogs": {"train": 20, "val": 100, "test": 100},
        "train.batch_size": 8,
        "models.catsdogs_cnn.epochs": 4,
    }
)
MODEL = "catsdogs_cnn"
KILLED = -signal.SIGKILL

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Paths:
    """The outputs of uninterrupted download, split and preprocess runs of FAULT_PARAMS."""
    paths = Paths(tmp_path_factory.mktemp("reference"))
    params = parse_params(FAULT_PARAMS)
    download("catsdogs", params.data["catsdogs"], params.seed, paths)
    split("catsdogs", params.split["catsdogs"], params.seed, paths)
    preprocess("catsdogs", params.preprocess["catsdogs"], paths)
    return paths


@pytest.fixture
def workspace(tmp_path: Path) -> Paths:
    """An empty workspace holding FAULT_PARAMS as its params.yaml."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(FAULT_PARAMS))
    return Paths(tmp_path)


def given(workspace: Paths, reference: Paths, *folders: str) -> None:
    """Copy the reference's outputs of the earlier stages (folders relative to the root) into the workspace."""
    for folder in folders:
        shutil.copytree(reference.root / folder, workspace.root / folder)


def start(workspace: Paths, *args: str) -> subprocess.Popen:
    """Start `python -m pipeline ARGS` in the workspace, importing this checkout's `pipeline`."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "DVC_STUDIO_OFFLINE": "true"}
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", *args],
        cwd=workspace.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def rerun(workspace: Paths, *args: str) -> str:
    """Run the stage again to the end; its stdout."""
    process = start(workspace, *args)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return out


def kill_once(process: subprocess.Popen, started: Callable[[], bool], timeout: float = 120) -> None:
    """SIGKILL the process as soon as `started()` holds; fail if it ends first (the moment was never seen)."""
    deadline = time.monotonic() + timeout
    while not started():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the stage ended before it could be killed: {process.communicate()[1][-2000:]}")
        time.sleep(0.005)
    process.kill()
    process.communicate()
    assert process.returncode == KILLED


def partial_copies(folder: Path) -> list[Path]:
    """The temporary copies (`.<name>.<random>.tmp`) of outputs being written in `folder`, if any."""
    return [path for path in folder.glob(".*.tmp") if any(path.rglob("*"))] if folder.is_dir() else []


def leftovers(workspace: Paths) -> list[Path]:
    """Anything half-written under the workspace: temporary copies, anywhere."""
    return sorted(workspace.root.rglob("*.tmp"))


def files(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_kill_9_during_download_then_rerun_gives_the_uninterrupted_archive(workspace, reference):
    raw = workspace.raw_dir("catsdogs")  # written whole: a temporary copy of the folder beside it, then renamed
    kill_once(start(workspace, "download", "catsdogs"), lambda: bool(partial_copies(raw.parent)))
    assert partial_copies(raw.parent)
    assert not raw.exists()

    rerun(workspace, "download", "catsdogs")

    assert files(raw) == files(reference.raw_dir("catsdogs"))
    assert leftovers(workspace) == [] and not list(raw.parent.glob(".source-*"))


def test_kill_9_during_preprocess_then_rerun_gives_the_uninterrupted_arrays(workspace, reference):
    given(workspace, reference, "data/raw", "data/manifests")
    processed = workspace.processed_dir("catsdogs").parent

    def arrays_started() -> bool:
        return any(path.suffix == ".npy" for copy in partial_copies(processed) for path in copy.rglob("*"))

    kill_once(start(workspace, "preprocess", "catsdogs"), arrays_started)
    assert not workspace.processed_dir("catsdogs").exists()

    rerun(workspace, "preprocess", "catsdogs")

    assert files(workspace.processed_dir("catsdogs")) == files(reference.processed_dir("catsdogs"))
    assert leftovers(workspace) == []


def test_kill_9_during_training_resumes_from_the_last_checkpoint_with_identical_weights(workspace, reference, monkeypatch):
    given(workspace, reference, "data/processed")
    monkeypatch.chdir(workspace.root)  # the uninterrupted run in this process: a third process would cost seconds
    monkeypatch.setenv("DVC_STUDIO_OFFLINE", "true")
    train(MODEL, parse_params(FAULT_PARAMS), workspace)
    uninterrupted, metrics = weights(workspace), files(workspace.train_dir(MODEL))
    workspace.model_file(MODEL).unlink()  # as `dvc repro` removes a stage's outputs before running it
    shutil.rmtree(workspace.train_dir(MODEL))

    kill_once(start(workspace, "train", MODEL), workspace.checkpoint(MODEL).is_file)
    assert not workspace.model_file(MODEL).exists()

    report = yaml.safe_load(rerun(workspace, "train", MODEL))

    assert 1 <= report["resumed_from_epoch"] < FAULT_PARAMS["models"][MODEL]["epochs"]
    resumed = weights(workspace)
    assert resumed.keys() == uninterrupted.keys()
    assert all(torch.equal(resumed[key], uninterrupted[key]) for key in uninterrupted)
    assert files(workspace.train_dir(MODEL))["metrics.json"] == metrics["metrics.json"]
    assert list(workspace.checkpoint(MODEL).parent.iterdir()) == []
    assert leftovers(workspace) == []


def weights(workspace: Paths) -> dict[str, torch.Tensor]:
    return torch.load(workspace.model_file(MODEL), weights_only=True)["state_dict"]
