"""Training recipes (`train.label_smoothing`, `mixup`, `cutmix`, `ema`, `warmup_epochs`, `lr_schedule: onecycle`):
the smoothed targets, the weights' moving average by its formula, and a real run with every one of them on."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.config.params import parse_params
from pipeline.models.forward import predict_logits
from pipeline.data.store import load_split
from pipeline.models.outputs import loss
from pipeline.models.registry import build_model
from pipeline.stages.train import train
from pipeline.stages.train import train_one_epoch
from pipeline.training.recipe import TrainingRecipe, weight_average
from tests.helpers.params import tiny_raw
from tests.helpers.train_runs import curve, weights

RECIPES = {
    "models.catsdogs_cnn.epochs": 3, "train.label_smoothing": 0.1, "train.mixup": 0.4, "train.cutmix": 1.0,
    "train.mix_prob": 0.8, "train.ema": 0.9, "train.warmup_epochs": 1, "train.lr_schedule": "onecycle",
}


def test_label_smoothing_targets_of_a_multi_class_model():
    logits, labels = torch.randn(5, 4, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 3, 1, 1, 2])
    smoothed = F.one_hot(labels, 4) * 0.8 + 0.2 / 4
    expected = -(smoothed * logits.log_softmax(1)).sum(1).mean()
    assert loss(logits, labels, smoothing=0.2) == pytest.approx(expected.item(), rel=1e-6)
    assert loss(logits, F.one_hot(labels, 4).float(), smoothing=0.2) == pytest.approx(expected.item(), rel=1e-6)


def test_label_smoothing_targets_of_a_two_class_models_one_output():
    logits, labels = torch.randn(6, 1, generator=torch.Generator().manual_seed(2)), torch.tensor([0, 1, 1, 0, 1, 0])
    smoothed = labels * 0.9 + 0.05
    expected = F.binary_cross_entropy_with_logits(logits[:, 0], smoothed)
    assert loss(logits, labels, smoothing=0.1).item() == pytest.approx(expected.item(), rel=1e-6)
    assert torch.equal(loss(logits, labels), F.binary_cross_entropy_with_logits(logits[:, 0], labels.float()))


@pytest.mark.parametrize("classes", [2, 4])
def test_soft_one_hot_targets_weigh_classes_as_hard_labels_do(classes):
    outputs = 1 if classes == 2 else classes
    logits = torch.randn(6, outputs, generator=torch.Generator().manual_seed(3))
    labels, class_weights = torch.tensor([0, 1, 1, 0, 1, 1]), torch.tensor([3.0, 0.5, 1.0, 2.0])[:classes]
    soft = labels.float() if classes == 2 else F.one_hot(labels, classes).float()
    for smoothing in (0.0, 0.2):
        hard = loss(logits, labels, class_weights, smoothing)
        assert loss(logits, soft, class_weights, smoothing).item() == pytest.approx(hard.item(), rel=1e-6)


class _Recording(torch.optim.lr_scheduler.LambdaLR):
    """A constant schedule that also records the model's float state after every step."""

    def __init__(self, optimizer: torch.optim.Optimizer, model: nn.Module) -> None:
        super().__init__(optimizer, lambda step: 1.0)  # steps once itself, before any training step
        self.model, self.states = model, []

    def step(self, *args) -> None:
        if hasattr(self, "states"):
            self.states.append({k: v.clone() for k, v in self.model.state_dict().items() if v.is_floating_point()})
        super().step(*args)


class _Bar:
    def update(self) -> None:
        """Nothing to show."""


def test_ema_weights_and_batchnorm_buffers_follow_the_formula_after_a_few_steps():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    scheduler, ema = _Recording(optimizer, model), weight_average(model, 0.75)
    recipe = TrainingRecipe(optimizer=optimizer, scheduler=scheduler, normalization=None, device=torch.device("cpu"), ema=ema)
    batches = [(torch.randn(8, 4), torch.randint(0, 3, (8,))) for _ in range(4)]
    train_one_epoch(model, recipe, batches, [8] * 4, 1, _Bar())
    expected = dict(scheduler.states[0])  # the first update copies the weights
    for state in scheduler.states[1:]:
        expected = {key: 0.75 * expected[key] + 0.25 * state[key] for key in expected}
    averaged = ema.module.state_dict()
    assert "1.running_mean" in expected
    assert all(torch.allclose(averaged[key], value, atol=1e-6) for key, value in expected.items())
    assert not torch.allclose(averaged["0.weight"], model.state_dict()["0.weight"])
    assert weight_average(model, 0.0) is None


@pytest.mark.usefixtures("outside_any_repo")
def test_a_run_with_every_recipe_on_trains_and_validates_and_saves_the_averaged_weights(prepared):
    raw = tiny_raw(**RECIPES, **{"train.keep": "last"})
    last = train("catsdogs_cnn", parse_params(raw), prepared)
    assert math.isfinite(last["train/loss"]) and 0 <= last["train/acc"] <= 1
    lrs = [lr for _, lr in curve(prepared, "lr")]
    assert lrs[0] == pytest.approx(0.001) and lrs[-1] == pytest.approx(0.001 / 25 / 1e4)  # the one cycle's peak, end
    model = parse_params(raw).model("catsdogs_cnn")
    val = load_split(prepared, "catsdogs", "val")
    net = build_model(model.arch, model.arch_args, in_channels=1, size=32, num_classes=2)
    net.load_state_dict(weights(prepared))
    logits = predict_logits(net, val.inputs, 4, torch.device("cpu"), None, False)
    plain = loss(logits, torch.from_numpy(val.labels)).item()  # no smoothing: val/loss is the plain loss
    assert last["val/loss"] == pytest.approx(plain, rel=1e-5)  # of the averaged weights, the ones saved
