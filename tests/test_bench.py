import json
import math

import pytest

import pipeline.upkeep.train_bench as bench_module
from pipeline.config.params import parse_params
from pipeline.upkeep.train_bench import bench, training_bench_table
from tests.helpers.params import tiny_raw

FIGURES = (
    "data_images_per_s",
    "step_images_per_s",
    "stage_images_per_s",
    "ratio",
    "validation_s",
    "validation_share",
    "stage_with_validation_images_per_s",
    "first_epoch_and_start_s",
    "stage_end_to_end_images_per_s",
    "peak_host_memory_mib",
)
SETTINGS = {"model": "catsdogs_cnn", "dataset": "catsdogs", "device": "cpu", "batch_size": 4, "train_images": 12}


@pytest.fixture(autouse=True)
def _outside_any_repo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_STUDIO_OFFLINE", "true")


def test_bench_writes_its_settings_and_finite_positive_figures_as_json(prepared, tiny_params):
    figures = bench("catsdogs_cnn", tiny_params, prepared, epochs=2, steps=3)
    assert set(figures) == {*SETTINGS, "epochs", *FIGURES}
    assert {key: figures[key] for key in SETTINGS} == SETTINGS and figures["epochs"] == 2
    assert all(math.isfinite(figures[key]) and figures[key] > 0 for key in FIGURES)
    assert json.loads(prepared.bench_file("catsdogs_cnn").read_text()) == figures


def test_bench_counts_the_images_an_epoch_trains_on_under_a_step_limit(prepared):
    params = parse_params(tiny_raw(**{"train.steps_per_epoch": 2}))
    assert bench("catsdogs_cnn", params, prepared, epochs=1, steps=2)["train_images"] == 2 * 4


def test_bench_times_a_first_epoch_then_the_asked_ones_in_a_scratch_folder_it_removes(
    prepared, tiny_params, monkeypatch
):
    real, runs = bench_module.train, []

    def train(model_name, params, paths, on_epoch):
        """The real stage, noting where it writes and each epoch it reports to the bench's clock."""
        epochs = []
        runs.append((paths.root, epochs))

        def noted(row, validation_s):
            epochs.append(row["epoch"])
            on_epoch(row, validation_s)

        return real(model_name, params, paths, noted)

    monkeypatch.setattr(bench_module, "train", train)
    bench("catsdogs_cnn", tiny_params, prepared, epochs=2, steps=2)
    ((scratch, epochs),) = runs
    assert epochs == [1, 2, 3]
    assert not scratch.exists()
    assert not prepared.model_file("catsdogs_cnn").exists()
    assert not prepared.train_dir("catsdogs_cnn").exists()
    assert not prepared.checkpoint("catsdogs_cnn").exists()


def test_the_table_shows_each_figure_with_its_unit():
    figures = {
        "model": "m", "device": "cpu", "batch_size": 32, "train_images": 2000, "epochs": 2,
        "data_images_per_s": 12345.6, "step_images_per_s": 300.0, "stage_images_per_s": 285.0, "ratio": 0.95,
        "validation_s": 0.75, "validation_share": 0.081, "stage_with_validation_images_per_s": 262.0,
        "first_epoch_and_start_s": 3.25, "stage_end_to_end_images_per_s": 250.0, "peak_host_memory_mib": 900.4,
    }
    table = training_bench_table(figures)
    assert table.splitlines()[0] == "m on cpu: batch 32, 2000 training images"
    for shown in ("| 12,346 images/s |", "| 300 images/s |", "| 285 images/s |", "| 0.95 |", "| 3.2 s |", "| 900 MiB |",
                  "| 0.75 s, 8% |", "| 262 images/s |"):
        assert shown in table
    assert "GPU" not in table
    assert "| 1,024 MiB |" in training_bench_table({**figures, "peak_gpu_memory_mib": 1024})
