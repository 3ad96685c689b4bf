"""The CUDA fast path against the CPU path. Skipped where there is no GPU; CI never needs one."""

import copy

import pytest
import torch

from conftest import tiny_raw
from pipeline.checkpoint import load_model
from pipeline.params import parse_params
from pipeline.train import build_for, make_optimizer, train, training_step
from pipeline.runtime import place

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(autouse=True)
def _outside_any_repo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_STUDIO_OFFLINE", "true")


@pytest.mark.parametrize("amp", [True, False], ids=["bf16", "fp32"])
def test_a_cuda_step_gives_the_cpu_step_s_loss_and_update(amp):
    config = parse_params(tiny_raw(**{"models.catsdogs_cnn.dropout": [0, 0, 0]})).model("catsdogs_cnn")
    torch.manual_seed(0)
    cpu_model = place(build_for("catsdogs_cnn", config, {"channels": 1, "size": 32, "classes": ["cat", "dog"]}), "cpu")
    gpu_model = place(copy.deepcopy(cpu_model), torch.device("cuda"))
    inputs, labels = torch.rand(16, 1, 32, 32), torch.randint(0, 2, (16,))
    results = []
    for model, device in ((cpu_model, "cpu"), (gpu_model, "cuda")):
        optimizer = make_optimizer(model.parameters(), config.train)
        _, loss, _ = training_step(model, optimizer, inputs.to(device), labels.to(device), amp)
        results.append((loss.item(), [p.detach().cpu() for p in model.parameters()]))
    (cpu_loss, cpu_weights), (gpu_loss, gpu_weights) = results
    tolerance = 2e-2 if amp else 1e-4
    assert gpu_loss == pytest.approx(cpu_loss, rel=tolerance)
    for cpu_w, gpu_w in zip(cpu_weights, gpu_weights, strict=True):
        assert torch.allclose(gpu_w, cpu_w, atol=tolerance * 0.1)


@pytest.mark.parametrize("on_device", [False, True], ids=["host_feed", "split_on_gpu"])
def test_the_train_stage_runs_on_cuda_with_either_feed(prepared, on_device):
    raw = tiny_raw(**{"train.device": "cuda", "train.data_on_device": on_device, "aug.hflip": 0.5})
    last = train("catsdogs_cnn", parse_params(raw), prepared)
    assert last["device"].startswith("cuda") and 0 <= last["val/acc"] <= 1
    model, _ = load_model(prepared.model_file("catsdogs_cnn"))
    assert all(p.device.type == "cpu" for p in model.parameters())
