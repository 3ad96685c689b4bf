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
from pipeline.models.file import load_model
from pipeline.stages.train import train

# One epoch of three global batches of 4; no dropout, whose masks differ between processes by design.
ONE_EPOCH = {"models.catsdogs_cnn.epochs": 1, "models.catsdogs_cnn.dropout": [0, 0, 0]}


@pytest.fixture(autouse=True)
def _outside_any_repo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_STUDIO_OFFLINE", "true")


@pytest.mark.slow
def test_two_gloo_processes_train_as_one_process_on_the_same_global_batch(prepared):
    raw = tiny_raw(**ONE_EPOCH)
    (prepared.root / "params.yaml").write_text(yaml.safe_dump(raw))
    alone = train("catsdogs_cnn", parse_params(raw), prepared)
    single, _ = load_model(prepared.model_file("catsdogs_cnn"))
    prepared.model_file("catsdogs_cnn").unlink()

    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "train", "catsdogs_cnn", "--nproc", "2"],
        cwd=prepared.root, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count('"resumed_from_epoch"') == 1  # rank 0 alone reports (and writes)
    report = json.loads(result.stdout[result.stdout.index("{") :])
    together, _ = load_model(prepared.model_file("catsdogs_cnn"))

    for name, tensor in single.state_dict().items():
        assert torch.allclose(together.state_dict()[name], tensor, rtol=1e-4, atol=1e-6), name
    assert report["train/loss"] == pytest.approx(alone["train/loss"], rel=1e-4)
    assert report["train/acc"] == alone["train/acc"]
    assert report["val/loss"] == pytest.approx(alone["val/loss"], rel=1e-4)


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
