import math

import pytest
import torch
from torch import nn

from pipeline.errors import PipelineError
from pipeline.models import ARCHS, build_model, loss, output_count, probabilities, register
from pipeline.params import ARCH_ARGS, CatsDogsCnnArgs


@pytest.mark.parametrize("arch", sorted(ARCHS))
@pytest.mark.parametrize(("channels", "size"), [(1, 80), (3, 32)], ids=["gray80", "rgb32"])
@pytest.mark.parametrize(("classes", "outputs"), [(2, 1), (10, 10)])
def test_every_architecture_gives_finite_logits_of_the_right_shape(arch, channels, size, classes, outputs):
    torch.manual_seed(0)
    model = build_model(arch, ARCH_ARGS[arch](), in_channels=channels, size=size, num_classes=classes).eval()
    with torch.no_grad():
        logits = model(torch.rand(5, channels, size, size))
    assert logits.shape == (5, outputs)
    assert torch.isfinite(logits).all()


def test_output_count_is_one_for_two_classes_else_one_per_class():
    assert [output_count(n) for n in (2, 3, 10)] == [1, 3, 10]


def test_unknown_architecture_is_a_key_error():
    with pytest.raises(KeyError, match="unknown architecture 'nope'"):
        build_model("nope", CatsDogsCnnArgs(), in_channels=1, size=32, num_classes=2)


def test_too_small_images_are_an_error_naming_the_minimum_and_the_size_key():
    with pytest.raises(PipelineError, match=r"at least 22 pixels.*got 16.*preprocess\.<dataset>\.size"):
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
