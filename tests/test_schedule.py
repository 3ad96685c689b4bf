import pytest
import torch

from pipeline.config.training import LrStep, TrainParams
from pipeline.training.schedule import initial_lr, lr_at, make_scheduler


def _rates(settings: TrainParams, batches: int = 1) -> list[list[float]]:
    """Every batch's rates (of both groups) over the run, the scheduler stepped after each batch."""
    optimizer = torch.optim.SGD(
        [
            {"params": [torch.nn.Parameter(torch.zeros(1))]},
            {"params": [torch.nn.Parameter(torch.zeros(1))], "lr": initial_lr(settings) / 10},
        ],
        lr=initial_lr(settings),
    )
    scheduler = make_scheduler(optimizer, settings, batches)
    rates = []
    for _ in range(settings.epochs * batches):
        rates.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return rates


def test_constant_schedule_keeps_the_rate():
    assert [lr for lr, _ in _rates(TrainParams(epochs=3, lr=0.01))] == [0.01] * 3


def test_cosine_schedule_starts_at_lr_and_anneals_towards_zero():
    rates = [lr for lr, _ in _rates(TrainParams(epochs=4, lr=0.1, lr_schedule="cosine"))]
    assert rates == pytest.approx([0.1, 0.1 * (1 + 2**-0.5) / 2, 0.05, 0.1 * (1 - 2**-0.5) / 2])


def test_step_schedule_holds_each_rate_for_its_epochs_then_keeps_the_last():
    steps = [LrStep(lr=0.1, epochs=2), LrStep(lr=0.01, epochs=1), LrStep(lr=0.001, epochs=1)]
    settings = TrainParams(epochs=6, lr=0.5, lr_schedule=steps)
    assert initial_lr(settings) == 0.1
    assert [lr_at(settings, epoch) for epoch in range(6)] == [0.1, 0.1, 0.01, 0.001, 0.001, 0.001]
    assert [lr for lr, _ in _rates(settings)] == pytest.approx([0.1, 0.1, 0.01, 0.001, 0.001, 0.001])


def test_groups_with_their_own_rate_keep_their_ratio_to_the_schedule():
    steps = [LrStep(lr=0.1, epochs=1), LrStep(lr=0.01, epochs=1)]
    for head, features in _rates(TrainParams(epochs=2, lr_schedule=steps)):
        assert features == pytest.approx(head / 10)


def test_the_classic_four_step_run_parses_from_yaml_style_values():
    settings = TrainParams.model_validate(
        {"epochs": 40, "lr_schedule": [{"lr": 10.0**-k, "epochs": 10} for k in range(1, 5)]}
    )
    assert [lr_at(settings, epoch) for epoch in (0, 9, 10, 25, 39)] == pytest.approx([0.1, 0.1, 0.01, 0.001, 0.0001])
