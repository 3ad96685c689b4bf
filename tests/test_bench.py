import json

import pytest

from pipeline.training.bench import bench, render

FIGURES = (
    "data_images_per_s", "step_images_per_s", "stage_images_per_s", "ratio", "validation_s", "peak_host_memory_mib"
)


@pytest.fixture(autouse=True)
def _outside_any_repo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_STUDIO_OFFLINE", "true")


def test_bench_measures_every_figure_and_writes_them_as_json(prepared, tiny_params):
    figures = bench("catsdogs_cnn", tiny_params, prepared, epochs=2, steps=3)
    assert all(figures[key] > 0 for key in (*FIGURES, "stage_end_to_end_images_per_s", "first_epoch_and_start_s"))
    assert figures["ratio"] == pytest.approx(figures["stage_images_per_s"] / figures["step_images_per_s"])
    assert 0 < figures["validation_share"] < 1
    assert figures["stage_with_validation_images_per_s"] < figures["stage_images_per_s"]
    assert (figures["device"], figures["batch_size"], figures["train_images"]) == ("cpu", 4, 12)
    assert json.loads(prepared.bench_file("catsdogs_cnn").read_text()) == figures


def test_bench_trains_in_a_scratch_folder_and_leaves_the_real_outputs_alone(prepared, tiny_params):
    bench("catsdogs_cnn", tiny_params, prepared, epochs=1, steps=2)
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
    table = render(figures)
    assert table.splitlines()[0] == "m on cpu: batch 32, 2000 training images"
    for shown in ("| 12,346 images/s |", "| 300 images/s |", "| 285 images/s |", "| 0.95 |", "| 3.2 s |", "| 900 MiB |",
                  "| 0.75 s, 8% |", "| 262 images/s |"):
        assert shown in table
    assert "GPU" not in table
    assert "| 1,024 MiB |" in render({**figures, "peak_gpu_memory_mib": 1024})
