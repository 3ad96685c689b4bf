"""`arch: timm`: a timm backbone trains, exports with parity and predicts, records its own preprocessing, and
offline its pretrained weights come from the file the error names. Slow tier: importing timm takes seconds."""

import json

import onnx
import pytest
import torch
from safetensors.torch import save_file

from pipeline.config.archs import TimmArgs
from pipeline.config.params import parse_params
from pipeline.core.errors import PipelineError
from pipeline.data.store import load_split
from pipeline.inference.onnx_backend import OnnxBackend
from pipeline.inference.torch_backend import TorchBackend
from pipeline.models.file import load_model
from pipeline.models.registry import build_model
from pipeline.models.timm_nets import timm_weights_file
from pipeline.stages.export import export
from pipeline.stages.train import train
from tests.helpers.params import tiny_raw

pytestmark = pytest.mark.slow
TINY_TIMM = "test_resnet"  # timm's own test model: 0.4M parameters


@pytest.mark.usefixtures("outside_any_repo")
def test_a_timm_model_trains_exports_with_parity_and_predicts(prepared):
    model = {"dataset": "catsdogs", "arch": "timm", "model_name": TINY_TIMM, "pretrained": False, "epochs": 1}
    params = parse_params(tiny_raw(**{"models.catsdogs_timm": model}))
    train("catsdogs_timm", params, prepared)
    _, saved = load_model(prepared.model_file("catsdogs_timm"))
    assert saved.backbone == {"input_size": [3, 160, 160], "mean": [0.5] * 3, "std": [0.5] * 3}

    figures = export("catsdogs_timm", prepared)
    assert figures["onnx"]["max_abs_diff"] <= 1e-4 and figures["onnx"]["top1_agreement"] == 1.0
    props = {p.key: p.value for p in onnx.load(prepared.onnx_file("catsdogs_timm")).metadata_props}
    assert json.loads(props["backbone"]) == saved.backbone and json.loads(props["arch"]) == "timm"

    images = load_split(prepared, "catsdogs", "test").inputs
    by_torch = TorchBackend(prepared.model_file("catsdogs_timm"), "cpu").probabilities(images)
    by_onnx = OnnxBackend(prepared.onnx_file("catsdogs_timm")).probabilities(images)
    assert by_torch.shape == (len(images), 2)
    assert abs(by_torch - by_onnx).max() < 1e-4


def test_offline_the_error_names_the_weights_file_and_a_file_put_there_is_loaded(monkeypatch, tmp_path):
    import timm.models._builder as builder

    def no_network(*args, **kwargs):
        raise OSError("no network")  # as the hub's client says offline, without waiting for its timeouts

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(builder, "load_state_dict_from_hf", no_network)
    args = TimmArgs(model_name=TINY_TIMM, pretrained=True)
    wanted = timm_weights_file(TINY_TIMM)
    with pytest.raises(PipelineError, match=f"by hand to {wanted}, or set its pretrained: false"):
        build_model("timm", args, in_channels=3, size=32, num_classes=4)

    torch.manual_seed(1)
    imagenet = build_model("timm", TimmArgs(model_name=TINY_TIMM), in_channels=3, size=32, num_classes=1000)
    wanted.parent.mkdir(parents=True)
    save_file(imagenet.state_dict(), wanted)
    model = build_model("timm", args, in_channels=3, size=32, num_classes=4)
    assert torch.equal(model.conv1[0].weight, imagenet.conv1[0].weight)
    assert model.get_classifier().out_features == 4


def test_an_unknown_model_name_is_an_error_naming_the_key():
    with pytest.raises(PipelineError, match="model_name: 'resnet_nope' is not a timm model"):
        build_model("timm", TimmArgs(model_name="resnet_nope"), in_channels=3, size=32, num_classes=4)
