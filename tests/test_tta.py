"""Test-time augmentation: the views each mode averages over, and probabilities that are their mean."""

import pytest
import torch
from torch import nn

from pipeline.config.params import parse_params
from pipeline.core.errors import PipelineError
from pipeline.inference.tta import views, with_tta
from pipeline.models.outputs import probabilities
from tests.helpers.params import changed, tiny_full, tiny_raw


def _tiny_net(outputs: int) -> nn.Module:
    """A small convnet that is not mirror-symmetric, so that each view gives other probabilities."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, outputs)).eval()


def _moved(images: torch.Tensor, by: int) -> torch.Tensor:
    """Images moved `by` pixels down and right (negative: up and left), the edge pixels repeated into the gap."""
    height, width = images.shape[-2:]
    rows = (torch.arange(height) - by).clamp(0, height - 1)
    cols = (torch.arange(width) - by).clamp(0, width - 1)
    return images[..., rows, :][..., :, cols]


def _mean_probabilities(model: nn.Module, inputs: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack([probabilities(model(view)) for view in inputs]).mean(0)


@pytest.mark.parametrize("outputs", [1, 3], ids=["sigmoid", "softmax"])
def test_flip_is_the_mean_of_the_plain_and_the_mirrored_pass(outputs):
    model, images = _tiny_net(outputs), torch.rand(5, 3, 8, 8)
    with torch.no_grad():
        expected = _mean_probabilities(model, [images, images.flip(-1)])
        got = probabilities(with_tta(model, "flip")(images))
        plain = probabilities(model(images))
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(got, plain, atol=1e-4)  # the mirror did change something


@pytest.mark.parametrize("outputs", [1, 3], ids=["sigmoid", "softmax"])
def test_flip_shift_is_the_mean_of_six_views_moved_one_pixel_with_edge_padding(outputs):
    model, images = _tiny_net(outputs), torch.rand(4, 3, 8, 8)
    mirrored = images.flip(-1)
    stated = [images, mirrored, _moved(images, 1), _moved(mirrored, 1), _moved(images, -1), _moved(mirrored, -1)]
    for view, expected in zip(views(images, "flip_shift"), stated, strict=True):
        assert torch.equal(view, expected)
    with torch.no_grad():
        got = probabilities(with_tta(model, "flip_shift")(images))
    torch.testing.assert_close(got, _mean_probabilities(model, stated))


def test_none_is_the_model_itself():
    model = _tiny_net(3)
    assert with_tta(model, "none") is model


def test_averaging_confident_views_gives_a_finite_loss():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 2 * 2, 3))
    with torch.no_grad():
        model[1].weight.mul_(1e4)
        logits = with_tta(model, "flip")(torch.rand(2, 3, 2, 2))
    assert torch.isfinite(torch.log_softmax(logits, 1)).all()


def test_a_table_row_cannot_be_flipped():
    with pytest.raises(PipelineError, match=r"needs images \(N, C, H, W\)"):
        with_tta(nn.Linear(4, 3), "flip")(torch.rand(2, 4))


def test_the_top_level_tta_applies_to_image_models_and_a_model_block_overrides_it():
    params = parse_params(tiny_raw(**{"evaluate.tta": "flip", "models.catsdogs_cnn.evaluate": {"tta": "flip_shift"}}))
    assert params.model("catsdogs_cnn").evaluate.tta == "flip_shift"
    assert parse_params(tiny_raw(**{"evaluate.tta": "flip"})).model("catsdogs_cnn").evaluate.tta == "flip"
    assert parse_params(tiny_raw()).model("catsdogs_cnn").evaluate.tta == "none"


def test_a_bad_tta_names_its_key():
    with pytest.raises(PipelineError, match=r"models\.catsdogs_cnn\.evaluate\.tta: Input should be 'none'"):
        parse_params(tiny_raw(**{"models.catsdogs_cnn.evaluate": {"tta": "mirror"}}))


def test_a_table_model_keeps_no_tta_under_the_top_level_one():
    params = parse_params(changed(tiny_full(), {"evaluate.tta": "flip"}))
    assert params.model("iris_mlp").evaluate.tta == "none"
    assert params.model("cifar_cnn").evaluate.tta == "flip"


def test_a_table_models_own_tta_is_an_error_naming_its_key():
    raw = changed(tiny_full(), {"models.iris_mlp.evaluate": {"tta": "flip"}})
    with pytest.raises(PipelineError, match=r"models\.iris_mlp\.evaluate\.tta: .* 'iris' is a table"):
        parse_params(raw)
