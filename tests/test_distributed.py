import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch
import yaml

from pipeline.config.params import parse_params
from pipeline.cli.torchrun import Nodes, launch
from pipeline.core.distributed import NODE_RANK_ENV, Shard, current_shard
from pipeline.serving.launch import free_port
from pipeline.core.errors import PipelineError
from pipeline.core.runtime import Normalization
from pipeline.data.store import load_split
from pipeline.models.file import load_model
from pipeline.stages.train import train
from pipeline.analysis.measure import measure
from tests.helpers.params import tiny_raw

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


def _two_nodes(roots: list) -> list[str]:
    """Train catsdogs_cnn as 2 "machines" of one process each, each in its own folder (`roots`, node 0's first),
    joined by a c10d rendezvous on 127.0.0.1 (gloo on the loopback interface); each node's stdout."""
    master = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "PET_LOCAL_ADDR": "127.0.0.1"}
    nodes = [
        subprocess.Popen(
            [sys.executable, "-m", "pipeline", "train", "catsdogs_cnn", "--nnodes", "2", "--node-rank", str(rank),
             "--master", master],
            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for rank, root in enumerate(roots)
    ]
    try:
        outputs = [node.communicate(timeout=300) for node in nodes]
    finally:
        for node in nodes:
            node.kill()
    assert [node.returncode for node in nodes] == [0, 0], "\n".join(err for _, err in outputs)
    return [out for out, _ in outputs]


@pytest.mark.slow
def test_two_nodes_of_one_process_train_as_one_process_on_the_same_global_batch(prepared, tmp_path):
    raw = tiny_raw(**ONE_EPOCH, **{"models.catsdogs_cnn": PLAIN})
    (prepared.root / "params.yaml").write_text(yaml.safe_dump(raw))
    other_machine = shutil.copytree(prepared.root, tmp_path.parent / f"{tmp_path.name}-node1")
    alone = train("catsdogs_cnn", parse_params(raw), prepared)
    single, _ = load_model(prepared.model_file("catsdogs_cnn"))
    prepared.model_file("catsdogs_cnn").unlink()

    node0, node1 = _two_nodes([prepared.root, other_machine])
    together, _ = load_model(prepared.model_file("catsdogs_cnn"))

    assert '"resumed_from_epoch"' in node0 and node1.strip() == ""  # node 0 alone reports and writes
    assert not (other_machine / "models").exists() and not (other_machine / "metrics" / "catsdogs_cnn").exists()
    report = json.loads(node0[node0.index("{") :])
    for name, tensor in single.state_dict().items():
        assert torch.allclose(together.state_dict()[name].float(), tensor.float(), rtol=1e-4, atol=1e-5), name
    assert report["train/loss"] == pytest.approx(alone["train/loss"], rel=1e-4)
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
    normalization = Normalization.from_stats(saved.normalization)
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
        launch(Nodes(nproc=3), ["catsdogs_cnn"])


def test_across_machines_torchrun_meets_at_the_master_by_c10d_and_node_0_hosts_the_rendezvous():
    options = Nodes(nproc=4, nnodes=2, node_rank=1, master="10.0.0.1:29500").torchrun_options("pipeline-cifar_cnn")
    assert options == [
        "--nnodes=2", "--node_rank=1", "--nproc_per_node=4", "--rdzv_backend=c10d", "--rdzv_endpoint=10.0.0.1:29500",
        "--rdzv_id=pipeline-cifar_cnn", "--rdzv_conf=is_host=0",
    ]
    assert "--rdzv_conf=is_host=1" in Nodes(nnodes=2, node_rank=0, master="10.0.0.1:29500").torchrun_options("x")
    assert Nodes(nproc=2).torchrun_options("x") == ["--standalone", "--nproc_per_node=2"]


@pytest.mark.parametrize(
    ("nodes", "message"),
    [
        (Nodes(nnodes=2), "--nnodes 2: add --master ADDR:PORT"),
        (Nodes(nnodes=2, node_rank=2, master="10.0.0.1:29500"), "--node-rank: 2, but --nnodes 2 numbers the machines"),
        (Nodes(nnodes=2, master="10.0.0.1"), "--master: '10.0.0.1' is not ADDR:PORT"),
        (Nodes(nnodes=2, master="10.0.0.1:http"), "is not ADDR:PORT"),
        (Nodes(nproc=2, master="10.0.0.1:29500"), "--master: only for training across machines"),
    ],
)
def test_a_layout_torchrun_could_not_join_is_refused_naming_the_option(nodes, message):
    with pytest.raises(PipelineError, match=re.escape(message)):
        launch(nodes, ["catsdogs_cnn"])


def test_across_machines_the_first_process_of_node_0_writes_whatever_its_global_rank(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv(NODE_RANK_ENV, "0")
    monkeypatch.setenv("RANK", "1")  # torchrun's c10d rendezvous numbers the machines in an order of its own
    assert current_shard().is_main
    monkeypatch.setenv(NODE_RANK_ENV, "1")
    monkeypatch.setenv("RANK", "0")
    assert not current_shard().is_main
