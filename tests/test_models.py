import math
import re
from urllib.error import URLError

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models import VGG16_BN_Weights, VGG16_Weights, WeightsEnum

from pipeline.data.store import DatasetMeta
from pipeline.config.archs import (
    ARCH_ARGS,
    BatchNormArgs,
    CatsDogsCnnArgs,
    CifarCnnArgs,
    MlpArgs,
    ResNet18Args,
    Vgg16Args,
)
from pipeline.config.params import ModelConfig, parse_params
from pipeline.config.training import AugParams, TrainParams
from pipeline.core.errors import PipelineError
from pipeline.models.file import load_model, save_model
from pipeline.models.layers import Dropout
from pipeline.models.outputs import inverse_frequency, loss, output_count, probabilities
from pipeline.models.registry import (
    PRETRAINED,
    ARCHS,
    BATCHNORM,
    build_model,
    parameter_groups,
    register,
)
from tests.helpers.steps import plain_step
from tests.helpers.params import tiny_raw

VGG16_FILE = "vgg16-397923af.pth"


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch):
    """Tests never download: any fetch of torchvision weights not served by a test fails it."""

    def refuse(self, *args, **kwargs):
        raise AssertionError(f"a test tried to fetch {self.url}")

    monkeypatch.setattr(WeightsEnum, "get_state_dict", refuse)


def _imagenet_like(build, seed: int) -> dict[str, torch.Tensor]:
    """Stands in for the ImageNet weights of torchvision's `build` (vgg16, vgg16_bn): every key of its state dict at
    its shape, the conv features random, the 120M-parameter classifier (never loaded: ours is new) zeros that take no
    memory. Building the real net would cost seconds, all in initialising that classifier."""
    with torch.device("meta"):
        metas = build().state_dict()
    generator = torch.Generator().manual_seed(seed)
    return {
        key: torch.randn(meta.shape, generator=generator)
        if key.startswith("features.") and meta.is_floating_point()
        else torch.zeros((), dtype=meta.dtype).expand(meta.shape)
        for key, meta in metas.items()
    }


@pytest.fixture(scope="module")
def imagenet_like_state() -> dict[str, torch.Tensor]:
    """Stands in for the VGG16 ImageNet weights (see `_imagenet_like`)."""
    return _imagenet_like(torchvision.models.vgg16, seed=1)


def _serve_weights(monkeypatch, fetch) -> None:
    monkeypatch.setattr(WeightsEnum, "get_state_dict", fetch)


SMALLEST = {"timm": {"model_name": "test_resnet"}}  # timm's own tiny test model
SLOW_IMPORTS = {"timm"}  # importing timm takes seconds: its cases run in the slow tier


def _from_scratch(arch: str):
    """The architecture's default args, without pretrained weights where it has them."""
    kind = ARCH_ARGS[arch]
    return kind(**({"pretrained": False} if "pretrained" in kind.model_fields else {}), **SMALLEST.get(arch, {}))


def _layers(model: nn.Module, kind: type[nn.Module]) -> list[nn.Module]:
    return [layer for layer in model.modules() if isinstance(layer, kind)]


def _cifar_vgg16(args: Vgg16Args, **kwargs) -> nn.Module:
    return build_model("vgg16", args, in_channels=3, size=32, num_classes=10, **kwargs)


@pytest.mark.parametrize(
    "arch", [pytest.param(arch, marks=pytest.mark.slow) if arch in SLOW_IMPORTS else arch for arch in sorted(ARCHS)]
)
@pytest.mark.parametrize(
    ("channels", "size"),
    [
        pytest.param(3, 32, id="rgb32"),
        pytest.param(1, 80, id="gray80", marks=pytest.mark.slow),
        pytest.param(3, 150, id="rgb150", marks=pytest.mark.slow),  # a 150x200 photo, resized
    ],
)
@pytest.mark.parametrize(("classes", "outputs"), [(2, 1), (3, 3), (13, 13)])
def test_every_architecture_trains_a_step_for_any_class_count_channels_and_size(arch, channels, size, classes, outputs):
    torch.manual_seed(0)
    model = build_model(arch, _from_scratch(arch), in_channels=channels, size=size, num_classes=classes).train()
    optimizer = torch.optim.SGD(parameter_groups(model, 0.01), lr=0.01)
    before = [p.detach().clone() for group in optimizer.param_groups for p in group["params"]]
    labels = torch.tensor([0, classes - 1])
    logits, batch_loss, _ = plain_step(model, optimizer, torch.rand(2, channels, size, size), labels)
    assert logits.shape == (2, outputs)
    assert torch.isfinite(logits).all() and torch.isfinite(batch_loss)
    after = [p for group in optimizer.param_groups for p in group["params"]]
    assert any(not torch.equal(old, new) for old, new in zip(before, after, strict=True))
    with torch.no_grad():
        assert probabilities(model.eval()(torch.rand(2, channels, size, size))).shape == (2, classes)


def test_output_count_is_one_for_two_classes_else_one_per_class():
    assert [output_count(n) for n in (2, 3, 10)] == [1, 3, 10]


def test_unknown_architecture_is_a_key_error():
    with pytest.raises(KeyError, match="unknown architecture 'nope'"):
        build_model("nope", CatsDogsCnnArgs(), in_channels=1, size=32, num_classes=2)


def test_too_small_images_are_an_error_naming_the_minimum_and_the_size_key():
    with pytest.raises(PipelineError, match=r"at least 22 pixels.*got 16.*preprocess\.<dataset>\.image_size"):
        build_model("catsdogs_cnn", CatsDogsCnnArgs(), in_channels=1, size=16, num_classes=2)
    build_model("catsdogs_cnn", CatsDogsCnnArgs(), in_channels=1, size=22, num_classes=2)


def test_loss_of_one_output_is_binary_cross_entropy():
    logits = torch.tensor([[0.0], [2.0], [-1.0]])
    labels = torch.tensor([0, 1, 1])
    expected = (math.log(2) + math.log(1 + math.exp(-2)) + math.log(1 + math.exp(1))) / 3
    assert loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)


def test_loss_of_several_outputs_is_cross_entropy():
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    labels = torch.tensor([2, 0])
    first = -math.log(math.exp(3) / (math.exp(1) + math.exp(2) + math.exp(3)))
    expected = (first + math.log(3)) / 2
    assert loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)


def test_probabilities_of_one_output_are_sigmoid_for_the_second_class():
    probs = probabilities(torch.tensor([[0.0], [2.0]]))
    assert probs.shape == (2, 2)
    assert probs[1, 1].item() == pytest.approx(1 / (1 + math.exp(-2)))
    assert torch.allclose(probs.sum(dim=1), torch.ones(2))


def test_probabilities_of_several_outputs_are_softmax_rows_summing_to_one():
    logits = torch.randn(4, 10, generator=torch.Generator().manual_seed(0))
    probs = probabilities(logits)
    assert torch.allclose(probs.sum(dim=1), torch.ones(4))
    assert torch.equal(probs.argmax(1), logits.argmax(1))


def test_registering_a_name_twice_raises_and_keeps_the_first():
    original = ARCHS["catsdogs_cnn"]
    with pytest.raises(ValueError, match="registered twice"):
        register("catsdogs_cnn")(lambda args, **kwargs: nn.Identity())
    assert ARCHS["catsdogs_cnn"] is original


def test_registering_a_name_without_an_args_schema_raises():
    with pytest.raises(ValueError, match="no args schema"):
        register("no_such_schema")(lambda args, **kwargs: nn.Identity())
    assert "no_such_schema" not in ARCHS


def test_catsdogs_cnn_layers_follow_its_args():
    args = CatsDogsCnnArgs(dropout=(0.1, 0.2, 0.3), dense=17)
    model = build_model("catsdogs_cnn", args, in_channels=3, size=32, num_classes=2)
    convs = [layer for layer in model.modules() if isinstance(layer, nn.Conv2d)]
    dropouts = [layer.p for layer in model.modules() if isinstance(layer, nn.Dropout)]
    linears = [layer for layer in model.modules() if isinstance(layer, nn.Linear)]
    assert [(conv.in_channels, conv.out_channels) for conv in convs] == [(3, 32), (32, 64), (64, 64)]
    assert dropouts == [0.1, 0.2, 0.3]
    assert [(linear.in_features, linear.out_features) for linear in linears] == [(64 * 2 * 2, 17), (17, 1)]


def test_mlp_flattens_the_image_into_its_hidden_layers():
    model = build_model("mlp", MlpArgs(hidden=[16, 8]), in_channels=1, size=20, num_classes=10)
    assert isinstance(model[0], nn.Flatten)
    assert [(layer.in_features, layer.out_features) for layer in _layers(model, nn.Linear)] == [
        (400, 16),
        (16, 8),
        (8, 10),
    ]
    assert len(_layers(model, nn.ReLU)) == 2


def test_cifar_cnn_is_three_blocks_of_two_same_size_convs_and_a_maxpool():
    model = build_model("cifar_cnn", CifarCnnArgs(), in_channels=3, size=32, num_classes=10)
    convs = _layers(model, nn.Conv2d)
    assert [(conv.in_channels, conv.out_channels) for conv in convs] == [
        (3, 32), (32, 32), (32, 64), (64, 64), (64, 128), (128, 128)
    ]
    assert all(conv.kernel_size == (3, 3) and conv.padding == (1, 1) for conv in convs)
    assert len(_layers(model, nn.MaxPool2d)) == 3
    linears = _layers(model, nn.Linear)
    assert [(linear.in_features, linear.out_features) for linear in linears] == [(128 * 4 * 4, 128), (128, 10)]


def test_cifar_cnn_has_no_batchnorm_or_dropout_unless_asked():
    model = build_model("cifar_cnn", CifarCnnArgs(), in_channels=3, size=32, num_classes=10)
    assert not _layers(model, nn.BatchNorm2d) and not _layers(model, nn.BatchNorm1d)
    assert not _layers(model, nn.Dropout)


def test_cifar_cnn_with_batchnorm_and_dropout_has_them_where_asked():
    args = CifarCnnArgs(batchnorm=True, dropout=(0.2, 0.3, 0.4, 0.5))
    model = build_model("cifar_cnn", args, in_channels=3, size=32, num_classes=10)
    assert len(_layers(model, nn.BatchNorm2d)) == 6
    assert [norm.num_features for norm in _layers(model, nn.BatchNorm1d)] == [128]
    assert [layer.p for layer in _layers(model, nn.Dropout)] == [0.2, 0.3, 0.4, 0.5]
    kinds = [type(layer) for layer in model.modules() if not isinstance(layer, nn.Sequential)]
    assert kinds[-4:] == [nn.BatchNorm1d, nn.ReLU, Dropout, nn.Linear]


def test_a_dropout_rate_of_zero_adds_no_layer():
    args = CifarCnnArgs(dropout=(0, 0.3, 0, 0.5))
    model = build_model("cifar_cnn", args, in_channels=3, size=32, num_classes=10)
    assert [layer.p for layer in _layers(model, nn.Dropout)] == [0.3, 0.5]


def test_building_leaves_batchnorm_statistics_untouched():
    model = build_model("cifar_cnn", CifarCnnArgs(batchnorm=True), in_channels=3, size=32, num_classes=10)
    for norm in _layers(model, nn.BatchNorm2d):
        assert norm.num_batches_tracked.item() == 0
        assert torch.equal(norm.running_mean, torch.zeros_like(norm.running_mean))
    assert model.training


def test_resnet18_small_input_has_a_3x3_stride_1_stem_and_no_maxpool():
    model = build_model("resnet18", ResNet18Args(small_input=True), in_channels=1, size=32, num_classes=10)
    conv = model.conv1
    assert (conv.in_channels, conv.out_channels) == (1, 64)
    assert (conv.kernel_size, conv.stride, conv.padding, conv.bias) == ((3, 3), (1, 1), (1, 1), None)
    assert isinstance(model.maxpool, nn.Identity)
    assert model.fc.out_features == 10


@pytest.mark.parametrize("channels", [1, 3])
def test_resnet18_keeps_the_imagenet_stem_unless_small_input(channels):
    model = build_model("resnet18", ResNet18Args(small_input=False), in_channels=channels, size=32, num_classes=2)
    conv = model.conv1
    assert (conv.in_channels, conv.kernel_size, conv.stride, conv.padding) == (channels, (7, 7), (2, 2), (3, 3))
    assert isinstance(model.maxpool, nn.MaxPool2d)
    assert model.fc.out_features == 1


def test_parameter_groups_by_default_is_one_group_of_every_parameter_at_the_lr():
    model = build_model("cifar_cnn", CifarCnnArgs(), in_channels=3, size=32, num_classes=10)
    groups = parameter_groups(model, 0.01)
    assert [group["lr"] for group in groups] == [0.01]
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in model.parameters()}


def test_vgg16_frozen_trains_only_its_new_head():
    model = _cifar_vgg16(Vgg16Args(pretrained=False, freeze=True, head=64, dropout=0.5))
    assert isinstance(model.avgpool, nn.AdaptiveAvgPool2d)
    head = [(layer.in_features, layer.out_features) for layer in _layers(model.classifier, nn.Linear)]
    assert head == [(512, 64), (64, 10)]
    assert [layer.p for layer in _layers(model.classifier, nn.Dropout)] == [0.5]
    assert not any(p.requires_grad for p in model.features.parameters())
    groups = parameter_groups(model, 0.01)
    assert [group["lr"] for group in groups] == [0.01]
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in model.classifier.parameters()}


def test_vgg16_conv_features_are_initialised_as_torchvision_does():
    model = _cifar_vgg16(Vgg16Args(pretrained=False))
    for conv in _layers(model.features, nn.Conv2d):
        expected_std = math.sqrt(2 / (conv.out_channels * 9))
        assert conv.weight.std().item() == pytest.approx(expected_std, rel=0.1)
        assert torch.equal(conv.bias, torch.zeros_like(conv.bias))
    assert all(p.device.type == "cpu" for p in model.parameters())


def test_vgg16_fine_tuned_with_features_lr_trains_the_features_in_their_own_group():
    model = _cifar_vgg16(Vgg16Args(pretrained=False, freeze=False, features_lr=1e-5))
    features, head = parameter_groups(model, 0.01)
    assert (features["lr"], head["lr"]) == (1e-5, 0.01)
    assert {id(p) for p in features["params"]} == {id(p) for p in model.features.parameters()}
    assert {id(p) for p in head["params"]} == {id(p) for p in model.classifier.parameters()}
    optimizer = torch.optim.Adam(parameter_groups(model, 0.01), lr=0.01)
    assert [group["lr"] for group in optimizer.param_groups] == [1e-5, 0.01]


def test_vgg16_fine_tuned_without_features_lr_trains_everything_at_the_lr():
    model = _cifar_vgg16(Vgg16Args(pretrained=False, freeze=False, features_lr=None))
    groups = parameter_groups(model, 0.01)
    assert [group["lr"] for group in groups] == [0.01]
    assert len(groups[0]["params"]) == len(list(model.parameters()))


def test_vgg16_pretrained_copies_the_imagenet_conv_weights(imagenet_like_state):
    assert PRETRAINED["vgg16"].upstream(Vgg16Args()).source["name"] == str(VGG16_Weights.IMAGENET1K_V1)
    model = _cifar_vgg16(Vgg16Args(pretrained=True), weights=imagenet_like_state)
    for key, value in model.features.state_dict().items():
        assert torch.equal(value, imagenet_like_state[f"features.{key}"]), key
    assert model.classifier[0].in_features == 512


def test_vgg16_batchnorm_is_torchvision_vgg16_bn_initialised_as_torchvision_does():
    model = _cifar_vgg16(Vgg16Args(pretrained=False, batchnorm=True))
    norms = _layers(model.features, nn.BatchNorm2d)
    assert len(norms) == len(_layers(model.features, nn.Conv2d)) == 13
    for norm in norms:
        assert torch.equal(norm.weight, torch.ones_like(norm.weight))
        assert torch.equal(norm.bias, torch.zeros_like(norm.bias))
        assert torch.equal(norm.running_var, torch.ones_like(norm.running_var))
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_vgg16_batchnorm_pretrained_copies_the_vgg16_bn_imagenet_weights():
    state = _imagenet_like(torchvision.models.vgg16_bn, seed=2)
    args = Vgg16Args(pretrained=True, batchnorm=True)
    assert PRETRAINED["vgg16"].upstream(args).source["name"] == str(VGG16_BN_Weights.IMAGENET1K_V1)
    model = _cifar_vgg16(args, weights=state)
    for key, value in model.features.state_dict().items():
        assert torch.equal(value, state[f"features.{key}"]), key


def test_vgg16_pretrained_on_gray_images_is_an_error_naming_the_color_key():
    with pytest.raises(PipelineError, match=re.escape("preprocess.<dataset>.color: rgb") + ".*pretrained: false"):
        build_model("vgg16", Vgg16Args(pretrained=True), in_channels=1, size=32, num_classes=10)


def test_vgg16_needs_images_of_at_least_32_pixels():
    with pytest.raises(PipelineError, match=r"at least 32 pixels.*got 16"):
        build_model("vgg16", Vgg16Args(pretrained=False), in_channels=3, size=16, num_classes=10)


def test_load_model_rebuilds_a_pretrained_model_without_fetching_weights(monkeypatch, tmp_path, imagenet_like_state):
    args = Vgg16Args(pretrained=True, head=8)
    model = _cifar_vgg16(args, weights=imagenet_like_state)
    config = ModelConfig("cifar_vgg16", "cifar10", "vgg16", args, TrainParams(), AugParams())
    meta = DatasetMeta(classes=[str(n) for n in range(10)], size=32, color="rgb", resize="squash", normalize=False,
                       mean=[0.5] * 3, std=[0.25] * 3)
    save_model(tmp_path / "model.pt", model, config, meta, 3, seed=0, epoch=1)

    def offline(self, *args, **kwargs):
        raise URLError("no network")

    _serve_weights(monkeypatch, offline)
    loaded, saved = load_model(tmp_path / "model.pt")
    assert saved.arch == "vgg16"
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


# Every architecture whose args take bn_momentum, with the keys that give it BatchNorm layers.
WITH_BATCHNORM = {
    "cifar_cnn": {"batchnorm": True},
    "vgg16": {"pretrained": False, "batchnorm": True},
    "resnet18": {},
    "airbench": {},
    "small_resnet": {},
}


def _bn_momenta(arch: str, **keys) -> list[float | None]:
    """The momentum of every BatchNorm layer of `arch` built for CIFAR-10 with WITH_BATCHNORM's keys and `keys`."""
    args = ARCH_ARGS[arch].model_validate(WITH_BATCHNORM[arch] | keys)
    model = build_model(arch, args, in_channels=3, size=32, num_classes=10)
    return [module.momentum for module in model.modules() if isinstance(module, BATCHNORM)]


def test_every_architecture_that_takes_bn_momentum_is_checked():
    assert set(WITH_BATCHNORM) == {arch for arch, block in ARCH_ARGS.items() if issubclass(block, BatchNormArgs)}


@pytest.mark.parametrize("arch", WITH_BATCHNORM)
def test_bn_momentum_is_pytorchs_momentum_of_every_batchnorm_layer(arch):
    momenta = _bn_momenta(arch, bn_momentum=0.25)
    assert momenta and all(momentum == 0.25 for momentum in momenta)


@pytest.mark.parametrize("arch", WITH_BATCHNORM)
def test_the_default_bn_momentum_is_pytorchs_default(arch):
    momenta = _bn_momenta(arch)
    assert momenta and all(momentum == nn.BatchNorm2d(1).momentum == 0.1 for momentum in momenta)


def test_a_saved_model_is_rebuilt_with_its_recorded_bn_momentum(tmp_path):
    args = CifarCnnArgs(widths=(4, 4, 4), dense=8, batchnorm=True, bn_momentum=0.25)
    model = build_model("cifar_cnn", args, in_channels=3, size=32, num_classes=10)
    config = ModelConfig("bn", "cifar10", "cifar_cnn", args, TrainParams(), AugParams())
    meta = DatasetMeta(classes=[str(n) for n in range(10)], size=32, color="rgb", resize="squash", normalize=False,
                       mean=[0.5] * 3, std=[0.25] * 3)
    save_model(tmp_path / "model.pt", model, config, meta, 3, seed=0, epoch=1)
    loaded, saved = load_model(tmp_path / "model.pt")
    assert saved.arch_args["bn_momentum"] == 0.25
    momenta = [module.momentum for module in loaded.modules() if isinstance(module, BATCHNORM)]
    assert momenta and all(momentum == 0.25 for momentum in momenta)


@pytest.mark.parametrize("value", [0, 1.5])
def test_a_bn_momentum_out_of_range_names_the_key(value):
    block = {"dataset": "catsdogs", "arch": "cifar_cnn", "batchnorm": True, "bn_momentum": value}
    with pytest.raises(PipelineError, match=r"models\.bn\.bn_momentum: Input should be"):
        parse_params(tiny_raw(**{"models.bn": block}))


def test_a_bn_momentum_of_1_is_the_last_batchs_statistics():
    block = {"dataset": "catsdogs", "arch": "cifar_cnn", "batchnorm": True, "bn_momentum": 1}
    assert parse_params(tiny_raw(**{"models.bn": block})).model("bn").arch_args.bn_momentum == 1


def test_bn_momentum_on_a_model_without_batchnorm_is_an_error_naming_the_model():
    raw = tiny_raw(**{"models.plain": {"dataset": "catsdogs", "arch": "cifar_cnn", "bn_momentum": 0.5}})
    with pytest.raises(PipelineError, match=r"models\.plain: .*bn_momentum is set, but the model has no BatchNorm"):
        parse_params(raw)


def test_inverse_frequency_weighs_each_class_as_a_balanced_split_would():
    labels = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 2])
    weights = inverse_frequency(labels, 4)
    assert weights.tolist() == pytest.approx([9 / (4 * 6), 9 / (4 * 2), 9 / (4 * 1), 0.0])
    totals = [float(weights[labels][labels == cls].sum()) for cls in range(3)]
    assert totals == pytest.approx([9 / 4] * 3)  # every present class weighs alike in total


@pytest.mark.parametrize("classes", [2, 3])
def test_a_weighted_loss_is_the_class_weighted_mean_of_the_sample_losses(classes):
    torch.manual_seed(0)
    logits = torch.randn(6, output_count(classes))
    labels = torch.tensor([0, 0, 0, 0, 1, 1]) if classes == 2 else torch.tensor([0, 0, 0, 1, 2, 2])
    weights = inverse_frequency(labels, classes)
    each = torch.stack([loss(logits[i : i + 1], labels[i : i + 1]) for i in range(6)])
    expected = (each * weights[labels]).sum() / weights[labels].sum()
    assert loss(logits, labels, weights) == pytest.approx(float(expected), rel=1e-6)
    assert loss(logits, labels, torch.ones(classes)) == pytest.approx(float(each.mean()), rel=1e-6)


def test_dropout_keeps_each_value_with_probability_1_minus_p_scaled_and_passes_the_mask_back():
    torch.manual_seed(0)
    inputs = torch.rand(64, 8, 16, 16) + 0.5  # no zeros of its own
    inputs.requires_grad_()
    dropout = Dropout(0.3).train()
    outputs = dropout(inputs)
    kept = outputs != 0
    assert kept.float().mean().item() == pytest.approx(0.7, abs=0.01)
    assert torch.allclose(outputs[kept], inputs[kept] / 0.7)
    outputs.sum().backward()
    assert torch.allclose(inputs.grad, kept.float() / 0.7)


def test_dropout_is_the_identity_in_eval_mode_and_at_0_and_zeroes_all_at_1():
    inputs = torch.rand(4, 3, 5, 5) + 0.5
    assert torch.equal(Dropout(0.5).eval()(inputs), inputs)
    assert torch.equal(Dropout(0.0).train()(inputs), inputs)
    assert not Dropout(1.0).train()(inputs).any()


def test_dropout_draws_repeat_with_the_seed():
    inputs = torch.rand(4, 3, 5, 5) + 0.5
    draws = []
    for _ in range(2):
        torch.manual_seed(7)
        draws.append(Dropout(0.5).train()(inputs))
    assert torch.equal(*draws)
