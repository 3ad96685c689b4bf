"""scripts/sample_range.py: the sample's figures again under other numerics and seeds, checked against the lessons."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tests.helpers.params import REPO, tiny_raw


SCRIPT = REPO / "scripts" / "sample_range.py"
_spec = importlib.util.spec_from_file_location("sample_range", SCRIPT)
sample_range = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sample_range)

CIFAR = {"cifar_mlp": 0.2, "cifar_cnn": 0.6, "cifar_cnn_bn": 0.75, "cifar_best": 0.82}


def test_the_check_holds_the_threshold_on_the_worst_run_and_the_order_in_every_run() -> None:
    good = {"default": {"catsdogs_cnn": 0.8, **CIFAR}, "seed=1": {"catsdogs_cnn": 0.66, **CIFAR}}
    assert sample_range.check(good, list(good["default"])) == []
    bad = {**good, "seed=2": {"catsdogs_cnn": 0.6, **CIFAR, "cifar_cnn": 0.8}}
    failures = sample_range.check(bad, list(good["default"]))
    assert failures == [
        "catsdogs_cnn: 0.600 on its worst variant, below 0.65",
        "seed=2: cifar_cnn 0.800 is not below cifar_cnn_bn 0.750",
    ]


def test_the_table_has_a_column_per_variant_and_the_range() -> None:
    table = sample_range.render({"default": {"m": 0.5}, "seed=1": {"m": 0.7}}, ["m"])
    assert table.splitlines()[0] == "| model | default | seed=1 | range |"
    assert table.splitlines()[2] == "| `m` | 0.500 | 0.700 | 0.500 to 0.700 |"


def test_an_earlier_report_of_other_variants_is_replaced_not_merged(tmp_path: Path) -> None:
    out = tmp_path / "range.json"
    out.write_text(json.dumps({"commands": ["old"], "test_accuracy": {"default": {"other": 0.9}}}))
    figures, commands = sample_range.merged(out, {"seed=1": {"m": 0.5}}, {"m", "other"})
    assert figures == {"seed=1": {"m": 0.5}} and len(commands) == 1


@pytest.mark.slow
def test_it_trains_in_a_scratch_folder_and_updates_the_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DVC_STUDIO_OFFLINE", "true")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_raw(**{"models.catsdogs_cnn.sample": {"epochs": 1}})))
    out = tmp_path / "range.json"
    out.write_text(json.dumps({"commands": ["an earlier run"], "test_accuracy": {"seed=7": {"catsdogs_cnn": 2, "gone": 1}}}))
    command = [sys.executable, str(SCRIPT), "--root", str(tmp_path), "--out", str(out), "--variants", "seed=7"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    report = json.loads(out.read_text())
    # The model run now replaces its earlier figure; a model no longer in params is dropped.
    assert list(report["test_accuracy"]) == ["seed=7"] and list(report["test_accuracy"]["seed=7"]) == ["catsdogs_cnn"]
    accuracy = report["test_accuracy"]["seed=7"]["catsdogs_cnn"]
    assert 0 <= accuracy <= 1 and report["range"]["catsdogs_cnn"] == [accuracy, accuracy]
    assert report["commands"][0] == "an earlier run" and "--variants seed=7" in report["commands"][1]
    assert "| `catsdogs_cnn` |" in done.stdout and "cores" in report["machine"]
    # A tiny net on 12 images a class is at chance: below the sample's threshold, which fails the run.
    assert done.returncode == 1 and "catsdogs_cnn" in report["failures"][0]
    assert not (tmp_path / "models").exists(), "each variant trains in a scratch folder of its own"


def test_an_unknown_variant_is_refused_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_raw()))
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--root", str(tmp_path), "--variants", "fast"], capture_output=True, text=True
    )
    assert done.returncode == 2 and "unknown variant 'fast'" in done.stderr
