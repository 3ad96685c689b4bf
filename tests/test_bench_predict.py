"""`pipeline bench-predict`: it runs end to end on a tiny model and reports every figure (not a timing test: the
figures are only checked to be there and positive)."""

import pytest

from pipeline.upkeep.serve_bench import SERVERS, bench, serving_bench_table
from tests.helpers.model_files import image_meta, untrained_model


@pytest.mark.slow
def test_bench_predict_reports_predict_and_server_figures(tmp_path):
    model = untrained_model(tmp_path / "models" / "bugs.pt", image_meta(["ant", "bee", "cow"], color="rgb"), "bugs")
    figures = bench(model, images=6, clients=2, requests=3)
    torch_rows = [row for row in figures["predict"] if row["backend"] == "torch"]
    assert [row["batch"] for row in torch_rows] == [1, 64]
    assert all(row["model_images_per_s"] > 0 and row["predict_images_per_s"] > 0 for row in figures["predict"])
    assert [row["server"] for row in figures["server"]][: len(SERVERS)] == [label for label, _ in SERVERS]
    assert all(row["requests_per_s"] > 0 and 0 < row["p50_ms"] <= row["p99_ms"] for row in figures["server"])
    if len(torch_rows) == len(figures["predict"]):
        assert figures["skipped"] and figures["skipped"][0].startswith("onnx: ")
    text = serving_bench_table(figures)
    assert "torch        1" in text and "torch, no batching (--max-batch 1)" in text
