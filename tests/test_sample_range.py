"""scripts/sample_range.py: the sample's figures again under other numerics and seeds, checked against the lessons."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.cli.stages import app
from tests.conftest import REPO, tiny_raw

pytestmark = pytest.mark.slow
SCRIPT = REPO / "scripts" / "sample_range.py"


def test_it_trains_each_variant_apart_and_reports_the_range(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_STUDIO_OFFLINE", "true")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_raw(**{"models.catsdogs_cnn.sample": {"epochs": 1}})))
    for stage in ("download", "settings", "split", "preprocess"):
        app([stage, "catsdogs"], standalone_mode=False)
    out = tmp_path / "range.json"
    earlier = {"one-thread": {"catsdogs_cnn": 2.0, "gone": 0.5}, "seed=7": {"catsdogs_cnn": 2.0, "gone": 0.5}}
    out.write_text(json.dumps({"commands": ["an earlier run"], "test_accuracy": earlier}))
    command = [sys.executable, str(SCRIPT), "--root", str(tmp_path), "--out", str(out), "--variants"]
    done = subprocess.run([*command, "one-thread,seed=7"], capture_output=True, text=True, timeout=300)
    report = json.loads(out.read_text())
    # The earlier report's figures of the model run now are replaced, and a model no longer in params is dropped.
    assert {variant: set(run) for variant, run in report["test_accuracy"].items()} == {
        "one-thread": {"catsdogs_cnn"},
        "seed=7": {"catsdogs_cnn"},
    }
    assert report["commands"][0] == "an earlier run" and "--variants one-thread,seed=7" in report["commands"][1]
    accuracies = [run["catsdogs_cnn"] for run in report["test_accuracy"].values()]
    assert report["range"]["catsdogs_cnn"] == [min(accuracies), max(accuracies)]
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
