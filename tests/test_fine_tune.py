"""fastai's fine_tune for vgg16 and resnet18: the head alone trains while the features are frozen, then the
features train too at features_lr, with one optimizer from the start; and resnet18's ImageNet weights."""

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models import ResNet18_Weights, WeightsEnum

from pipeline.config.archs import ResNet18Args, Vgg16Args
from pipeline.config.params import parse_params
from pipeline.config.training import TrainParams
from pipeline.core.errors import PipelineError
from pipeline.models.registry import (
    PRETRAINED,
    BATCHNORM,
    build_model,
    features_of,
    parameter_groups,
)
from pipeline.stages.train import train
from pipeline.training.fine_tune import fine_tune_epoch
from pipeline.training.recipe import make_optimizer
from tests.helpers.steps import plain_step
from tests.helpers.params import tiny_full, tiny_raw
from tests.helpers.train_runs import train_killed_in_epoch
from tests.helpers.train_runs import weights

LR, FEATURES_LR = 1e-2, 1e-3
FINE_TUNE = {"freeze_epochs": 1}


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch):
    """Tests never download: any fetch of torchvision weights not served by a test fails it."""

    def refuse(self, *args, **kwargs):
        raise AssertionError(f"a test tried to fetch {self.url}")

    monkeypatch.setattr(WeightsEnum, "get_state_dict", refuse)


def _resnet(**args) -> nn.Module:
    torch.manual_seed(0)
    return build_model("resnet18", ResNet18Args(**args), in_channels=3, size=32, num_classes=4)


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in model.state_dict().items()}


def _changed(before: dict[str, torch.Tensor], model: nn.Module) -> set[str]:
    return {key for key, value in model.state_dict().items() if not torch.equal(before[key], value)}


def test_the_features_are_every_layer_but_the_head():
    resnet = _resnet()
    assert [name for name, child in resnet.named_children() if child in features_of(resnet)] == [
        "conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool"
    ]
    vgg = build_model("vgg16", Vgg16Args(pretrained=False, freeze=False, head=8), in_channels=3, size=32, num_classes=4)
    assert features_of(vgg) == [vgg.features]


def test_the_head_alone_trains_while_frozen_then_the_features_train_at_features_lr():
    model = _resnet(fine_tune=FINE_TUNE, features_lr=FEATURES_LR).train()
    optimizer = make_optimizer(parameter_groups(model, LR), TrainParams(optimizer="sgd", lr=LR, weight_decay=1e-4))
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert in_optimizer == {id(p) for p in model.parameters()}  # frozen or not, from the start
    features = {id(p) for module in features_of(model) for p in module.parameters()}
    assert [(group["lr"], {id(p) for p in group["params"]} == features) for group in optimizer.param_groups] == [
        (FEATURES_LR, True), (LR, False)
    ]
    images, labels = torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    before, args = _snapshot(model), ResNet18Args(fine_tune=FINE_TUNE, features_lr=FEATURES_LR)
    fine_tune_epoch(model, args, epoch=1)
    model.train()  # as the loop does at the start of each epoch: the frozen BatchNorm layers stay in eval mode
    plain_step(model, optimizer, images, labels)
    assert _changed(before, model) == {"fc.weight", "fc.bias"}  # running statistics untouched too
    assert all(not layer.training for layer in model.modules() if isinstance(layer, BATCHNORM))
    fine_tune_epoch(model, args, epoch=2)
    model.train()
    before = _snapshot(model)
    plain_step(model, optimizer, images, labels)
    changed = _changed(before, model)
    assert {"conv1.weight", "bn1.running_mean", "layer4.1.conv2.weight", "fc.weight"} <= changed
    assert all(layer.training for layer in model.modules() if isinstance(layer, BATCHNORM))


def test_a_model_without_fine_tune_is_left_alone():
    model = _resnet()
    fine_tune_epoch(model, ResNet18Args(), epoch=1)
    assert all(p.requires_grad for p in model.parameters())


def test_fine_tune_with_frozen_vgg16_features_is_an_error_naming_the_key():
    raw = tiny_full()
    raw["models"]["cifar_vgg16"] |= {"freeze": True, "fine_tune": FINE_TUNE}
    with pytest.raises(PipelineError, match=r"models\.cifar_vgg16\.fine_tune: .*but freeze is true"):
        parse_params(raw)


@pytest.mark.slow  # three ResNet-18 runs: about 10 s
@pytest.mark.usefixtures("outside_any_repo")
def test_a_run_killed_mid_freeze_resumes_to_the_uninterrupted_weights(prepared, monkeypatch):
    block = {"dataset": "catsdogs", "arch": "resnet18", "epochs": 3, "features_lr": FEATURES_LR,
             "fine_tune": {"freeze_epochs": 2}}
    params = parse_params(tiny_raw(**{"models.catsdogs_cnn": block}))
    train("catsdogs_cnn", params, prepared)
    uninterrupted = weights(prepared)
    prepared.model_file("catsdogs_cnn").unlink()
    train_killed_in_epoch(monkeypatch, 2, params, prepared)  # epoch 1 checkpointed, frozen
    train("catsdogs_cnn", params, prepared)
    resumed = weights(prepared)
    assert resumed.keys() == uninterrupted.keys()
    assert all(torch.equal(resumed[key], uninterrupted[key]) for key in resumed)


@pytest.mark.parametrize(("small_input", "fresh"), [(False, {"fc."}), (True, {"fc.", "conv1."})])
def test_pretrained_resnet18_loads_imagenet_weights_into_all_but_the_new_parts(small_input, fresh):
    torch.manual_seed(1)
    imagenet = torchvision.models.resnet18().state_dict()
    args = ResNet18Args(pretrained=True, small_input=small_input)
    assert PRETRAINED["resnet18"].upstream(args).source["name"] == str(ResNet18_Weights.IMAGENET1K_V1)
    model = build_model("resnet18", args, in_channels=3, size=32, num_classes=4, weights=imagenet)
    for key, value in model.state_dict().items():
        new = key.startswith(tuple(fresh))
        assert new != (value.shape == imagenet[key].shape and torch.equal(value, imagenet[key])), key


def test_pretrained_resnet18_on_gray_images_is_an_error_naming_the_color_key():
    with pytest.raises(PipelineError, match=r"resnet18 with pretrained ImageNet weights needs RGB images.*color: rgb"):
        build_model("resnet18", ResNet18Args(pretrained=True), in_channels=1, size=32, num_classes=4)
