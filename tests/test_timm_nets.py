"""`arch: timm`: a timm backbone trains, exports with parity and predicts, records its own preprocessing, and an
unknown name is an error naming the key (its pretrained weights: tests/test_weights.py). Slow tier: importing timm
takes seconds."""

import json

import onnx
import pytest

from pipeline.config.archs import TimmArgs
from pipeline.config.params import parse_params
from pipeline.core.errors import PipelineError
from pipeline.data.store import load_split
from pipeline.inference.onnx_backend import OnnxBackend
from pipeline.inference.torch_backend import TorchBackend
from pipeline.models.file import load_model
from pipeline.models.registry import build_model
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


def test_an_unknown_model_name_is_an_error_naming_the_key():
    with pytest.raises(PipelineError, match="model_name: 'resnet_nope' is not a timm model"):
        build_model("timm", TimmArgs(model_name="resnet_nope"), in_channels=3, size=32, num_classes=4)
