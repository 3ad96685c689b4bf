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


def test_stepped_per_batch_the_epoch_schedules_give_every_batch_its_epochs_rate():
    steps = [LrStep(lr=0.1, epochs=2), LrStep(lr=0.01, epochs=1)]
    for settings in (TrainParams(epochs=4, lr=0.01), TrainParams(epochs=4, lr_schedule=steps),
                     TrainParams(epochs=4, lr=0.1, lr_schedule="cosine")):
        per_epoch = _rates(settings)
        per_batch = _rates(settings, batches=3)
        assert per_batch == [rates for rates in per_epoch for _ in range(3)]


def test_onecycle_follows_torchs_one_cycle_curve_batch_by_batch():
    settings = TrainParams(epochs=5, lr=0.2, lr_schedule="onecycle")
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.2)
    reference = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.2, total_steps=30, cycle_momentum=False)
    expected = []
    for _ in range(30):
        expected.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        reference.step()
    rates = [lr for lr, _ in _rates(settings, batches=6)]  # the peak at step 0.3 * 30 - 1
    assert rates == pytest.approx(expected, rel=1e-9)
    assert rates[0] == pytest.approx(0.2 / 25) and max(rates) == pytest.approx(0.2)
    assert rates[-1] == pytest.approx(0.2 / 25 / 1e4)


def test_onecycle_rises_over_warmup_epochs_when_set():
    rates = [lr for lr, _ in _rates(TrainParams(epochs=4, lr=0.1, lr_schedule="onecycle", warmup_epochs=1), 10)]
    assert rates[9] == pytest.approx(0.1) and rates[:10] == sorted(rates[:10]) and rates[10:] == sorted(rates[10:])[::-1]


def test_warmup_rises_linearly_batch_by_batch_to_the_schedules_rate():
    steps = [LrStep(lr=0.1, epochs=1), LrStep(lr=0.01, epochs=2)]
    settings = TrainParams(epochs=3, lr_schedule=steps, warmup_epochs=2)
    rates = _rates(settings, batches=4)
    assert [head for head, _ in rates] == pytest.approx(
        [0.1 * k / 8 for k in range(1, 5)] + [0.01 * k / 8 for k in range(5, 9)] + [0.01] * 4
    )
    assert all(features == pytest.approx(head / 10) for head, features in rates)
    assert lr_at(settings, 0, 0, 4) == pytest.approx(0.1 / 8)
