import json
import subprocess
import sys

import pytest
import torch
import yaml
from conftest import tiny_raw

from pipeline.config.params import parse_params
from pipeline.core.distributed import Shard, current_shard, launch
from pipeline.core.errors import PipelineError
from pipeline.core.runtime import Normalization
from pipeline.data.store import load_split
from pipeline.models.file import load_model
from pipeline.stages.train import train
from pipeline.training.measure import measure

# One epoch of three global batches of 4; no dropout, whose masks differ between processes by design.
ONE_EPOCH = {"train.epochs": 1}
PLAIN = {"dataset": "catsdogs", "arch": "catsdogs_cnn", "dropout": [0, 0, 0]}
WITH_BATCHNORM = {
    "dataset": "catsdogs", "arch": "cifar_cnn", "widths": [4, 8, 8], "dense": 8, "batchnorm": True, "dropout": [0, 0, 0, 0]
}


@pytest.fixture(autouse=True)
def _outside_any_repo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_STUDIO_OFFLINE", "true")


def _two_processes(paths) -> dict:
    """Train catsdogs_cnn (as the params file in `paths.root` says) in 2 gloo processes; rank 0's report."""
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "train", "catsdogs_cnn", "--nproc", "2"],
        cwd=paths.root, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count('"resumed_from_epoch"') == 1  # rank 0 alone reports (and writes)
    return json.loads(result.stdout[result.stdout.index("{") :])


@pytest.mark.slow
@pytest.mark.parametrize("model", [PLAIN, WITH_BATCHNORM], ids=["plain", "batchnorm"])
def test_two_gloo_processes_train_as_one_process_on_the_same_global_batch(prepared, model):
    raw = tiny_raw(**ONE_EPOCH, **{"models.catsdogs_cnn": model})
    (prepared.root / "params.yaml").write_text(yaml.safe_dump(raw))
    alone = train("catsdogs_cnn", parse_params(raw), prepared)
    single, _ = load_model(prepared.model_file("catsdogs_cnn"))
    prepared.model_file("catsdogs_cnn").unlink()

    report = _two_processes(prepared)
    together, _ = load_model(prepared.model_file("catsdogs_cnn"))

    for name, tensor in single.state_dict().items():  # BatchNorm's running statistics included
        assert torch.allclose(together.state_dict()[name].float(), tensor.float(), rtol=1e-4, atol=1e-5), name
    assert report["train/loss"] == pytest.approx(alone["train/loss"], rel=1e-4)
    assert report["train/acc"] == alone["train/acc"]
    assert report["val/loss"] == pytest.approx(alone["val/loss"], rel=1e-4)
    assert report["val/acc"] == alone["val/acc"]


@pytest.mark.slow
def test_with_batchnorm_and_dropout_every_validation_image_counts_once(prepared):
    """Dropout masks differ between 1 and 2 processes by design; the validation figures, shared out between the
    processes, must still be those of the saved model on the whole split."""
    raw = tiny_raw(**ONE_EPOCH, **{"models.catsdogs_cnn": {**WITH_BATCHNORM, "dropout": [0.2, 0.2, 0.2, 0.5]}})
    (prepared.root / "params.yaml").write_text(yaml.safe_dump(raw))
    report = _two_processes(prepared)
    model, saved = load_model(prepared.model_file("catsdogs_cnn"))
    val = load_split(prepared, "catsdogs", "val")
    normalization = Normalization.from_meta(saved["normalization"])
    scored = measure(model, val, 4, torch.device("cpu"), normalization)
    assert report["val/loss"] == pytest.approx(scored.loss, rel=1e-5)
    assert report["val/acc"] == scored.accuracy


def test_without_torchrun_a_process_trains_alone(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    assert current_shard() == Shard(0, 1) and current_shard().is_main


def test_under_torchrun_the_rank_and_world_come_from_its_environment(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    assert current_shard() == Shard(2, 4) and not current_shard().is_main


def test_more_processes_than_gpus_is_refused_before_starting(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(PipelineError, match="--nproc: 3 processes, but this machine has 2 GPUs"):
        launch(3, ["train", "catsdogs_cnn"])
