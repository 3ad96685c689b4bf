"""The `weights@<model>` stage: pretrained weights fetched (faked at torchvision's and timm's boundary: no network)
or read from a local `weights` file, checked, written with their record; train loads them and downloads nothing."""

import json
from urllib.error import URLError

import pytest
import torch
import torchvision
from torchvision.models import ResNet18_Weights, WeightsEnum

from pipeline.config.params import parse_params
from pipeline.core.errors import PipelineError
from pipeline.core.paths import WEIGHTS_RECORD, WEIGHTS_STATE
from pipeline.models import registry
from pipeline.models.calibration import file_sha256
from pipeline.models.pretrained import stage_weights
from pipeline.stages.train import train
from pipeline.stages.weights import weights
from tests.helpers.datasets import prepare
from tests.helpers.params import tiny_raw

RESNET = {"dataset": "catsdogs", "arch": "resnet18", "pretrained": True, "small_input": True}


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch):
    """Any download not served by a test fails it."""

    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to download weights")

    monkeypatch.setattr(WeightsEnum, "get_state_dict", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)


@pytest.fixture(scope="module")
def imagenet_resnet18() -> dict[str, torch.Tensor]:
    """Stands in for ResNet-18's ImageNet weights: its state dict at every key and shape, randomly initialised."""
    torch.manual_seed(3)
    return torchvision.models.resnet18().state_dict()


def _params(**model):
    """Tiny params with the model block `catsdogs_net`, its images in RGB as published weights take them."""
    return parse_params(tiny_raw(**{"preprocess.catsdogs.color": "rgb", "models.catsdogs_net": model}))


def test_a_model_without_pretrained_weights_gets_a_record_of_none(paths, tiny_params):
    assert weights("catsdogs_cnn", tiny_params, paths) == {"weights": None}
    assert json.loads((paths.weights_dir("catsdogs_cnn") / WEIGHTS_RECORD).read_text()) == {"weights": None}
    assert stage_weights(paths, tiny_params.model("catsdogs_cnn")) is None


def test_the_stage_writes_upstream_weights_with_their_source_and_hash(monkeypatch, paths, imagenet_resnet18):
    monkeypatch.setattr(WeightsEnum, "get_state_dict", lambda self, *args, **kwargs: imagenet_resnet18)
    params = _params(**RESNET)
    record = weights("catsdogs_net", params, paths)["weights"]
    folder = paths.weights_dir("catsdogs_net")
    assert record["from"] == "torchvision" and record["name"] == str(ResNet18_Weights.IMAGENET1K_V1)
    assert record["url"] == ResNet18_Weights.IMAGENET1K_V1.url
    assert record["sha256"] == file_sha256(folder / WEIGHTS_STATE)
    loaded = stage_weights(paths, params.model("catsdogs_net"))
    assert all(torch.equal(loaded[key], value) for key, value in imagenet_resnet18.items())

    weights("catsdogs_net", params, paths)  # the same weights again: the same bytes, so dvc.lock does not move
    assert file_sha256(folder / WEIGHTS_STATE) == record["sha256"]


def test_without_network_or_cache_the_error_names_the_model_the_weights_and_what_to_do(monkeypatch, paths):
    def offline(self, *args, **kwargs):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(WeightsEnum, "get_state_dict", offline)
    with pytest.raises(PipelineError) as error:
        weights("catsdogs_net", _params(**RESNET), paths)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("models.catsdogs_net: could not fetch its pretrained weights ResNet18_Weights.IMAGENET1K_V1")
    assert "copy them to" in message and "dvc pull weights@catsdogs_net" in message


def test_a_local_weights_file_of_other_shapes_is_refused_naming_the_key_file_and_tensor(paths, imagenet_resnet18):
    state = dict(imagenet_resnet18, **{"layer1.0.conv1.weight": torch.zeros(64, 64, 1, 1)})
    local = paths.root / "my_weights.pt"
    torch.save(state, local)
    with pytest.raises(PipelineError) as error:
        weights("catsdogs_net", _params(**RESNET, weights="my_weights.pt"), paths)
    message = str(error.value)
    assert message.startswith(f"models.catsdogs_net.weights ({local}): not weights of arch resnet18")
    assert "tensor layer1.0.conv1.weight has shape [64, 64, 1, 1], the architecture's [64, 64, 3, 3]" in message


def test_a_local_weights_file_that_fits_is_kept_with_its_path(paths, imagenet_resnet18):
    torch.save(imagenet_resnet18, paths.root / "my_weights.pt")
    record = weights("catsdogs_net", _params(**RESNET, weights="my_weights.pt"), paths)["weights"]
    assert record["from"] == "file" and record["path"] == "my_weights.pt"


def test_weights_without_pretrained_are_refused_naming_the_key():
    with pytest.raises(PipelineError, match="weights is set .*pretrained is false"):
        _params(dataset="catsdogs", arch="resnet18", pretrained=False, weights="my_weights.pt").model("catsdogs_net")


def test_train_without_its_weights_stage_says_what_to_run(paths):
    with pytest.raises(PipelineError, match=r"run `dvc repro weights@catsdogs_net`.*`dvc pull weights@catsdogs_net`"):
        stage_weights(paths, _params(**RESNET).model("catsdogs_net"))


@pytest.mark.slow  # importing timm takes seconds
@pytest.mark.usefixtures("outside_any_repo")
def test_train_starts_from_the_stage_weights_and_downloads_nothing(monkeypatch, paths):
    import timm
    import timm.models._builder as builder

    raw = tiny_raw(**{"preprocess.catsdogs.color": "rgb", "models.catsdogs_net": {
        "dataset": "catsdogs", "arch": "timm", "model_name": "test_resnet", "pretrained": True, "epochs": 1}})
    params = parse_params(raw)
    torch.manual_seed(4)
    published = timm.create_model("test_resnet").state_dict()
    monkeypatch.setattr(builder, "load_pretrained", lambda model, *args, **kwargs: model.load_state_dict(published))
    record = weights("catsdogs_net", params, paths)["weights"]
    assert record["from"] == "timm" and record["hf_hub_id"] == "timm/test_resnet.r160_in1k"

    def refuse(*args, **kwargs):
        raise AssertionError("train tried to download weights")

    for name in ("load_pretrained", "load_state_dict_from_hf", "load_state_dict_from_url"):
        monkeypatch.setattr(builder, name, refuse)
    loaded = []
    real_load = registry.load_into
    monkeypatch.setattr(registry, "load_into", lambda model, state, *rest: loaded.append(state) or real_load(
        model, state, *rest))
    prepare(paths, params, "catsdogs")
    train("catsdogs_net", params, paths)
    assert len(loaded) == 1
    assert all(torch.equal(loaded[0][key], value) for key, value in published.items())
