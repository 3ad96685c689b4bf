"""The CUDA fast path against the CPU path. Skipped where there is no GPU; CI never needs one."""

import copy

import pytest
import torch

from pipeline.config.params import parse_params
from pipeline.core.runtime import place
from pipeline.models.file import load_model
from pipeline.stages.train import train
from pipeline.data.store import DatasetMeta
from pipeline.stages.train import fresh_model
from pipeline.training.recipe import make_optimizer
from tests.helpers.steps import plain_step
from tests.helpers.params import tiny_raw

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(autouse=True)
def _outside_any_repo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_STUDIO_OFFLINE", "true")


def _flat(model: torch.nn.Module) -> torch.Tensor:
    """Every parameter in one vector on the CPU (reshape: channels-last kernels cannot be viewed flat)."""
    return torch.cat([parameter.detach().reshape(-1).cpu() for parameter in model.parameters()])


@pytest.mark.parametrize(("amp", "tolerance"), [(True, 0.05), (False, 1e-4)], ids=["bf16", "fp32"])
def test_a_cuda_step_gives_the_cpu_step_s_loss_and_update(amp, tolerance, monkeypatch):
    """Same weights, same batch, one plain SGD step (its update is the gradient, scaled) on each device.

    Without autocast the GPU must do fp32 arithmetic: TF32, which cuDNN's convolutions use by default on Ampere and
    later GPUs (10 bits of mantissa), is switched off here, or the update differs by about 0.5% (seen on an H200).
    Matrix products are fp32 unless `torch.set_float32_matmul_precision` says otherwise, which nothing here does.
    """
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    assert torch.get_float32_matmul_precision() == "highest"
    changes = {
        "models.catsdogs_cnn.dropout": [0, 0, 0], "train.optimizer": "sgd", "train.momentum": 0, "train.lr": 0.01
    }
    config = parse_params(tiny_raw(**changes)).model("catsdogs_cnn")
    torch.manual_seed(0)
    meta = DatasetMeta(classes=["cat", "dog"], size=32, mean=[0.5], std=[0.25], normalize=False)
    cpu_model = place(fresh_model(config, meta, channels=1), torch.device("cpu"))
    start = _flat(cpu_model)
    gpu_model = place(copy.deepcopy(cpu_model), torch.device("cuda"))
    inputs, labels = torch.rand(16, 1, 32, 32), torch.randint(0, 2, (16,))
    losses, updates = [], []
    for model, device in ((cpu_model, "cpu"), (gpu_model, "cuda")):
        optimizer = make_optimizer(model.parameters(), config.train)
        _, loss, _ = plain_step(model, optimizer, inputs.to(device), labels.to(device), amp)
        losses.append(loss.item())
        updates.append(_flat(model) - start)
    assert losses[1] == pytest.approx(losses[0], rel=tolerance)
    assert (updates[1] - updates[0]).norm() <= tolerance * updates[0].norm()


@pytest.mark.parametrize("on_device", [False, True], ids=["host_feed", "split_on_gpu"])
def test_the_train_stage_runs_on_cuda_with_either_feed(prepared, on_device):
    raw = tiny_raw(**{"train.device": "cuda", "train.data_on_device": on_device, "aug.hflip": 0.5})
    last = train("catsdogs_cnn", parse_params(raw), prepared)
    assert last["device"].startswith("cuda") and 0 <= last["val/acc"] <= 1
    model, _ = load_model(prepared.model_file("catsdogs_cnn"))
    assert all(p.device.type == "cpu" for p in model.parameters())
