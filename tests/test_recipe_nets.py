"""The recipe models' nets: airbench94's (dirac-initialised convs, shift-only BatchNorm, scaled logits) and ResNet-9
(residual blocks, max pooling, the stem pool); both refuse images too small for their pooling."""

import pytest
import torch
from torch import nn

from pipeline.config.archs import AirbenchArgs, SmallResNetArgs
from pipeline.config.params import load_params
from pipeline.core.errors import PipelineError
from pipeline.models.recipe_nets import _Residual, _Scale
from pipeline.models.registry import build_model, parameter_groups


def _airbench(**args) -> nn.Module:
    return build_model("airbench", AirbenchArgs(**args), in_channels=3, size=32, num_classes=10)


def test_airbench_convs_start_as_identities_on_their_first_input_channels():
    convs = [m for m in _airbench(stem=4, widths=(8, 8, 16)).modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) == 6
    for conv in convs:
        identity = torch.zeros_like(conv.weight[: conv.in_channels])
        nn.init.dirac_(identity)
        assert torch.equal(conv.weight[: min(conv.in_channels, conv.out_channels)], identity[: conv.out_channels])
        assert conv.bias is None


def test_airbench_batchnorm_scales_are_fixed_so_only_shifts_train():
    model = _airbench()
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(not m.weight.requires_grad and m.bias.requires_grad for m in norms)
    trained = {id(p) for group in parameter_groups(model, 0.1) for p in group["params"]}
    assert all(id(m.weight) not in trained for m in norms)


def test_airbench_logits_are_the_bias_free_head_times_scale():
    model = _airbench(scale=0.5).eval()
    head, scale = model[-2], model[-1]
    assert isinstance(head, nn.Linear) and head.bias is None and isinstance(scale, _Scale)
    inputs = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(inputs), model[:-1](inputs) * 0.5)


def test_resnet9_has_two_residual_blocks_adding_their_input():
    model = build_model("small_resnet", SmallResNetArgs(widths=(4, 8, 8, 16)), in_channels=3, size=32, num_classes=2)
    blocks = [m for m in model.modules() if isinstance(m, _Residual)]
    assert [b.body[0].in_channels for b in blocks] == [8, 16]
    inputs = torch.rand(1, 8, 6, 6)
    blocks[0].eval()
    with torch.no_grad():
        assert torch.allclose(blocks[0](inputs), inputs + blocks[0].body(inputs))


@pytest.mark.parametrize(("stem_pool", "smallest"), [(True, 16), (False, 8)])
def test_resnet9_stem_pool_halves_the_input_once_more(stem_pool, smallest):
    args = SmallResNetArgs(widths=(4, 8, 8, 8), stem_pool=stem_pool)
    pools = [m for m in build_model("small_resnet", args, in_channels=1, size=smallest, num_classes=3).modules()
             if isinstance(m, nn.MaxPool2d)]
    assert len(pools) == 3 + stem_pool
    with pytest.raises(PipelineError, match=f"at least {smallest} pixels"):
        build_model("small_resnet", args, in_channels=1, size=smallest - 1, num_classes=3)


def test_the_recipe_models_of_params_yaml_build_and_differ_from_the_classic_datasets_only_where_said():
    params = load_params()
    assert params.model("cifar_best").arch == "airbench"
    best = params.model("catsdogs_best")
    assert best.arch == "small_resnet" and best.dataset == "catsdogs_rgb"
    rgb, classic = params.data["catsdogs_rgb"], params.data["catsdogs"]
    assert rgb.builtin == "catsdogs" and (rgb.source, rgb.layout, rgb.classes) == (classic.source, classic.layout, classic.classes)
    assert params.preprocess["catsdogs_rgb"].color == "rgb" and params.preprocess["catsdogs"].color == "gray"


def test_cifar_best_keeps_airbenchs_share_of_the_running_statistics():
    # airbench94's BatchNorm(momentum=0.6) passes 1 - 0.6 to PyTorch: 0.6 of the running statistics kept a step.
    model = load_params().model("cifar_best")
    net = build_model("airbench", model.arch_args, in_channels=3, size=32, num_classes=10)
    momenta = [module.momentum for module in net.modules() if isinstance(module, nn.BatchNorm2d)]
    assert momenta and all(momentum == pytest.approx(1 - 0.6) for momentum in momenta)
