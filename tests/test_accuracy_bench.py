import json

import pytest
import torch
import yaml
from torch import nn
from typer.testing import CliRunner

import pipeline.upkeep.accuracy_bench as accuracy_module
from pipeline.cli.main import app
from pipeline.config.params import parse_params
from pipeline.core.errors import PipelineError
from pipeline.stages.evaluate import evaluate
from pipeline.training.recipe import TrainingRecipe
from pipeline.upkeep.accuracy_bench import (
    EpochEnd,
    accuracy_bench_file,
    accuracy_bench_table,
    bench_accuracy,
    parse_targets,
    time_to_targets,
    training_flop_per_image,
    training_images_per_s,
)
from tests.helpers.params import tiny_raw


@pytest.fixture(autouse=True)
def _outside_any_repo_with_a_short_matmul(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_STUDIO_OFFLINE", "true")
    monkeypatch.setattr(accuracy_module, "MATMUL_SECONDS", 0.2)


def test_a_training_step_counts_each_linear_layer_forward_and_backward():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    before = [parameter.detach().clone() for parameter in model.parameters()]
    recipe = TrainingRecipe(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1), scheduler=None, normalization=None,
        device=torch.device("cpu"), amp=False,
    )
    batch = (torch.randn(8, 5), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]))
    # Forward 2*in*out an image a layer; backward the same again for the weights' gradient and, but for the first
    # layer (its input needs none), once more for the input's: 3x for the second layer, 2x for the first.
    assert training_flop_per_image(model, recipe, batch) == 2 * 2 * 5 * 4 + 3 * 2 * 4 * 3
    assert all(torch.equal(old, new) for old, new in zip(before, model.parameters()))  # counted on a copy


def ends(*accuracies: float) -> list[EpochEnd]:
    """Epochs 1, 2, ... ending 10 s apart (the first after 15 s: start-up), each with a 1 s validation pass."""
    return [EpochEnd(number, 5.0 + 10.0 * number, 1.0, accuracy) for number, accuracy in enumerate(accuracies, 1)]


def test_each_target_is_reached_at_the_first_epoch_scoring_at_least_it():
    reached = time_to_targets(ends(0.5, 0.86, 0.84, 0.9), [0.85, 0.9, 0.95])
    assert reached == [
        {"target": 0.85, "epoch": 2, "wall_s": 25.0},
        {"target": 0.9, "epoch": 4, "wall_s": 45.0},
        {"target": 0.95, "epoch": None, "wall_s": None},
    ]


def test_training_speed_is_of_the_epochs_after_the_first_less_their_validation():
    assert training_images_per_s(ends(0.5, 0.6, 0.7), 900) == 100.0
    with pytest.raises(PipelineError, match="--epochs must be at least 2"):
        training_images_per_s(ends(0.5), 900)


def test_targets_are_accuracies_between_0_and_1():
    assert parse_targets("0.9, 0.85,0.9") == (0.85, 0.9)
    for wrong in ("85,90", "0", "", "0.9,high"):
        with pytest.raises(PipelineError, match="--targets"):
            parse_targets(wrong)


def test_the_bench_scores_what_evaluate_would_and_uses_a_share_of_the_machine(trained):
    # The epochs asked win over the sample budget's, as over the model's own.
    params = parse_params(tiny_raw(**{"models.catsdogs_cnn.sample": {"epochs": 3}}))
    figures = bench_accuracy("catsdogs_cnn", params, trained, targets=(0.5, 1.0), epochs=2)
    assert json.loads(accuracy_bench_file(trained, "catsdogs_cnn").read_text()) == figures
    assert [end["epoch"] for end in figures["history"]] == [1, 2] and figures["epochs"] == 2
    assert figures["history"][0]["wall_s"] < figures["history"][1]["wall_s"]
    assert 0 < figures["share"] < 1.5
    assert figures["achieved_gflops"] == pytest.approx(figures["train_flop_per_image"] * figures["images_per_s"] / 1e9)
    # The run is the train stage's own, seeded alike: the epoch the stage kept scores on test as evaluate says.
    metrics = evaluate("catsdogs_cnn", trained, "cpu")
    assert figures["history"][metrics["epoch"] - 1]["test_acc"] == metrics["accuracy"]
    assert figures["final_test_acc"] == figures["history"][-1]["test_acc"]


def test_the_command_prints_the_table_and_writes_the_figures(prepared):
    (prepared.root / "params.yaml").write_text(yaml.safe_dump(tiny_raw()))
    result = CliRunner().invoke(
        app, ["bench-accuracy", "catsdogs_cnn", "--epochs", "2", "--targets", "0.5,0.99", "--out", "figures.json"]
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("catsdogs_cnn on cpu (")
    assert lines[2].startswith("| model | data | images/s | GFLOP/s achieved | matmul GFLOP/s | share |")
    assert lines[2].endswith("| to 50% | to 99% |")
    assert lines[4].startswith("| `catsdogs_cnn` | catsdogs 32x32x1, 12 train / 6 test |")
    assert json.loads((prepared.root / "figures.json").read_text())["model"] == "catsdogs_cnn"


def test_the_table_shows_times_to_targets_or_not_reached():
    figures = {
        "model": "m", "dataset": "cifar10", "input_shape": [32, 32, 3], "device": "cpu", "torch": "2.9.0",
        "torch_threads": 2, "batch_size": 64, "train_images": 9000, "test_images": 2000, "tta": "flip", "epochs": 4,
        "targets": [{"target": 0.85, "epoch": 3, "wall_s": 95.25}, {"target": 0.9, "epoch": None, "wall_s": None}],
        "final_test_acc": 0.8712, "images_per_s": 412.4, "train_flop_per_image": 1.25e8, "achieved_gflops": 51.55,
        "matmul_gflops": 110.2, "matmul_gflops_start": 108.0, "matmul_gflops_end": 112.4, "share": 0.4678,
        "scoring_s": 12.5,
    }
    table = accuracy_bench_table(figures)
    assert "125.0 MFLOP a training image" in table.splitlines()[0]
    assert table.splitlines()[-1] == (
        "| `m` | cifar10 32x32x3, 9,000 train / 2,000 test | 412 | 51.5 | 110.2 | **46.8%** | 87.1% (epoch 4) "
        "| 95.2 s (epoch 3) | not reached |"
    )
