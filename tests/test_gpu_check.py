"""scripts/gpu_check.sh and what it runs: airbench94's files made from the preprocessed arrays (read back by airbench's
own loader, on the CPU), the table from the parts' outcomes and figures, and the script's CPU flow end to end. The
GPU figures themselves need a GPU; CI never does."""

import hashlib
import json
import os
import subprocess
import types
from functools import partial
from pathlib import Path

import airbench
import numpy as np
import pytest
import torch
from airbench.lib_airbench94 import hyp
from typer.testing import CliRunner

import pipeline.upkeep.airbench_side as side
from pipeline.cli.main import app
from pipeline.config.resolution import RESOLVED_PARAMS_FILE
from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths
from pipeline.data.store import DatasetMeta, SplitArrays
from pipeline.upkeep.gpu_check import gpu_check_table
from tests.helpers.params import REPO

CLASSES = [f"class{number}" for number in range(10)]
SIZES = {"train": 12, "val": 4, "test": 6}


def _processed(paths: Paths, size: int = 32, color: str = "rgb", classes: list[str] = CLASSES) -> Paths:
    """A preprocessed dataset `cifar10` of random pixels, as the preprocess stage stores it."""
    folder = paths.processed_dir("cifar10")
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    channels = 3 if color == "rgb" else 1
    for split, count in SIZES.items():
        np.save(folder / f"{split}_inputs.npy", rng.integers(0, 256, (count, size, size, channels), dtype=np.uint8))
        np.save(folder / f"{split}_labels.npy", np.arange(count, dtype=np.int64) % len(classes))
    meta = DatasetMeta(classes=classes, size=size, color=color, mean=[0.5] * channels, std=[0.25] * channels,
                       normalize=True)
    (folder / "meta.json").write_text(meta.model_dump_json())
    return paths


def test_airbench_s_own_loader_reads_the_files_made_from_the_arrays(tmp_path):
    paths = _processed(Paths(tmp_path / "run"))
    folder = side.write_airbench_files(paths, "cifar10", tmp_path / "scratch")
    assert folder == tmp_path / "scratch" / "cifar10"
    saved = torch.load(folder / "train.pt", weights_only=True)
    assert saved["images"].dtype == torch.uint8 and saved["images"].shape == (SIZES["train"], 32, 32, 3)
    assert saved["labels"].dtype == torch.int64 and saved["classes"] == CLASSES
    train = airbench.CifarLoader(str(folder), train=True, batch_size=4, aug=hyp["aug"], altflip=True, gpu="cpu")
    inputs, labels = next(iter(train))
    assert inputs.shape == (4, 3, 32, 32) and inputs.dtype == torch.float16 and labels.dtype == torch.int64
    test = airbench.CifarLoader(str(folder), train=False, batch_size=4, gpu="cpu")
    assert len(test.images) == SIZES["test"]
    assert test.labels.tolist() == np.load(paths.processed_dir("cifar10") / "test_labels.npy").tolist()


def test_the_split_keeps_its_pixels_and_labels():
    images = np.arange(2 * 32 * 32 * 3, dtype=np.uint8).reshape(2, 32, 32, 3)
    converted = side.airbench_split(SplitArrays(images, np.array([3, 7])), CLASSES)
    assert np.array_equal(converted["images"].numpy(), images) and converted["labels"].tolist() == [3, 7]


@pytest.mark.parametrize(
    ("size", "color", "classes", "named"),
    [(80, "rgb", CLASSES, "image_size 80"), (32, "gray", CLASSES, "color gray"), (32, "rgb", CLASSES[:2], "classes 2")],
)
def test_a_dataset_airbench94_cannot_take_is_refused_naming_what_differs(tmp_path, size, color, classes, named):
    paths = _processed(Paths(tmp_path), size, color, classes)
    with pytest.raises(PipelineError, match=f"dataset 'cifar10': {named} .*preprocess.cifar10.image_size: 32"):
        side.write_airbench_files(paths, "cifar10", tmp_path / "scratch")
    assert not (tmp_path / "scratch").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for a machine without a GPU")
def test_without_a_gpu_airbench94_is_refused_saying_it_needs_one(tmp_path):
    with pytest.raises(PipelineError, match="needs a CUDA GPU"):
        side.run_airbench94(_processed(Paths(tmp_path)), "cifar10")


def test_airbench94_trains_in_a_folder_holding_the_test_set_where_it_looks_for_it(tmp_path, monkeypatch):
    """airbench's train94 loads `./cifar10/test.pt` itself: the run happens where that is the test split. Here on the
    CPU, with airbench's loader and stand-ins for its GPU-only training and scoring."""
    seen = {}

    def train94(loader, verbose):
        seen["test_labels"] = torch.load(Path("cifar10/test.pt"), weights_only=True)["labels"].tolist()
        return "net"

    stand_in = types.SimpleNamespace(
        CifarLoader=partial(airbench.CifarLoader, gpu="cpu"), warmup94=lambda loader: print("warm-up"), train94=train94,
        evaluate=lambda model, loader, tta_level: 0.5 if (model, tta_level) == ("net", 2) else 0.0,
    )
    monkeypatch.setattr(side, "_airbench", lambda: (stand_in, hyp))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda: "stand-in GPU")
    paths = _processed(Paths(tmp_path / "run"))
    figures = side.run_airbench94(paths, "cifar10")
    assert seen["test_labels"] == np.load(paths.processed_dir("cifar10") / "test_labels.npy").tolist()
    assert figures["test_accuracy"] == 0.5 and figures["epochs"] == hyp["opt"]["train_epochs"]
    assert (figures["train_images"], figures["test_images"], figures["device"]) == (12, 6, "stand-in GPU")
    assert figures["epoch_s"] == pytest.approx(figures["train_s"] / figures["epochs"])


def _status(root: Path, part: str, line: str, log: str = "") -> None:
    (root / "check" / f"{part}.status").write_text(line + "\n")
    (root / "check" / f"{part}.log").write_text(log)


def _rows(table: str) -> dict[str, str]:
    """The table's result column by its check column."""
    rows = [line.split(" | ") for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    return {cells[0].removeprefix("| "): cells[1] for cells in rows[1:]}


def test_the_table_shows_each_part_s_figures(tmp_path):
    root = _processed(Paths(tmp_path)).root
    paths = Paths(root)
    (root / "check").mkdir()
    (root / "check" / "mode").write_text("gpu\n")
    (root / "check" / "device.txt").write_text("NVIDIA H100; torch 2.15.0 (CUDA 13.2); 16 CPU cores\n")
    for part, line in [("data", "ok 95"), ("bench", "ok 40"), ("train", "ok 27"),
                       ("evaluate", "ok 12"), ("airbench", "ok 20")]:
        _status(root, part, line)
    _status(root, "setup", "ok 1", "setup: using the existing .venv\n")
    _status(root, "cuda_tests", "ok 20", "....\n4 passed in 19.02s\n")
    bench = {"model": "cifar_best", "train_images": 45000, "batch_size": 512, "step_images_per_s": 150000.0,
             "stage_images_per_s": 90000.0, "ratio": 0.6}
    paths.bench_file("cifar_best").parent.mkdir(parents=True)
    paths.bench_file("cifar_best").write_text(json.dumps(bench))
    paths.train_dir("cifar_best").mkdir(parents=True)
    (paths.train_dir("cifar_best") / RESOLVED_PARAMS_FILE).write_text(json.dumps({"epochs": 15}))
    paths.test_metrics("cifar_best").write_text(json.dumps({"accuracy": 0.8471, "tta": "flip", "samples": 10000}))
    airbench_figures = {"epoch_s": 0.3412, "batch_size": 1024, "train_s": 3.378, "epochs": 9.9,
                        "test_accuracy": 0.85, "tta_level": 2, "test_images": 10000}
    (root / "check" / "airbench.json").write_text(json.dumps(airbench_figures))
    table = gpu_check_table(root, 301, "cifar_best", "cifar10")
    assert table.splitlines()[0].startswith("GPU check (`bash scripts/gpu_check.sh`, a gpu run), ")
    assert _rows(table) == {
        "device": "NVIDIA H100; torch 2.15.0 (CUDA 13.2); 16 CPU cores",
        "setup": "using the existing .venv",
        "data (generated, source `sample`)": "12 train / 4 val / 6 test, 32x32x3; made in 95 s",
        "`tests/test_cuda.py`": "4 passed in 19.02s",
        "`cifar_best` bare training step": "150,000 images/s",
        "`cifar_best` train stage, an epoch less its validation pass": "90,000 images/s",
        "**ratio stage / step**": "**0.60**, below the goal",
        "`cifar_best` epoch: train stage / bare step": "0.50 s / 0.30 s (45,000 images, batch 512)",
        "airbench94 epoch": "0.34 s (batch 1024)",
        "`cifar_best` training: the train stage process, start to end": "27 s (epochs: 15)",
        "airbench94 training, after its warm-up": "3.4 s (epochs: 9.9)",
        "`cifar_best` test accuracy (evaluate)": "0.8471 (tta flip, 10,000 images)",
        "airbench94 test accuracy": "0.8500 (tta level 2, 10,000 images)",
        "the whole check": "301 s",
    }


def test_a_part_that_gave_no_figures_shows_what_became_of_it(tmp_path):
    (tmp_path / "check").mkdir()
    _status(tmp_path, "data", "ok 0 reused")  # its arrays are gone: the table says where to look, not a figure
    _status(tmp_path, "bench", "timeout 90")
    _status(tmp_path, "train", "failed 3 1", "cifar_best: airbench\nerror: models.cifar_best.lr: must be > 0\n")
    _status(tmp_path, "evaluate", "not_run 0 the check's 470 s were spent")
    _status(tmp_path, "airbench", "skipped 0 needs a GPU (a --cpu run)")
    rows = _rows(gpu_check_table(tmp_path, 480, "cifar_best", "cifar10"))
    assert rows["data (generated, source `sample`)"] == f"no figures (see {tmp_path / 'check' / 'data.log'})"
    assert rows["**ratio stage / step**"] == "timed out after 90 s"
    assert rows["`cifar_best` training: the train stage process, start to end"] == (
        "failed (exit 1): error: models.cifar_best.lr: must be > 0"
    )
    assert rows["`cifar_best` test accuracy (evaluate)"] == "not run: the check's 470 s were spent"
    assert rows["airbench94 test accuracy"] == "skipped: needs a GPU (a --cpu run)"
    assert rows["`tests/test_cuda.py`"] == "not run (the check stopped before it)"
    assert rows["device"] == "unknown (the check stopped before it looked)"


@pytest.mark.slow
def test_the_script_s_cpu_flow_runs_to_the_table_leaving_the_workspace_alone(tmp_path):
    params = hashlib.sha256((REPO / "params.yaml").read_bytes()).hexdigest()
    env = {**os.environ, "GPU_CHECK_SCRATCH": str(tmp_path / "scratch"), "OUT": str(tmp_path / "out")}
    run = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh"), "--cpu"], cwd=tmp_path, env=env, check=False,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    table = (tmp_path / "out" / "gpu_check.md").read_text()
    assert table.strip() in run.stdout
    rows = _rows(table)
    assert rows["data (generated, source `sample`)"].startswith("90 train / 10 val / 30 test, 32x32x3; made in ")
    assert rows["**ratio stage / step**"].startswith("**")
    assert rows["`cifar_best` test accuracy (evaluate)"].endswith("(tta flip_shift, 30 images)")
    assert rows["`tests/test_cuda.py`"] == rows["airbench94 test accuracy"] == "skipped: needs a GPU (a --cpu run)"
    assert "torch" in rows["device"]
    assert hashlib.sha256((REPO / "params.yaml").read_bytes()).hexdigest() == params


def test_the_script_refuses_an_unknown_argument():
    run = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh"), "--gpu"], capture_output=True, text=True, check=False)
    assert run.returncode == 2 and "usage: bash scripts/gpu_check.sh [--cpu]" in run.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for a machine without a GPU")
def test_the_command_without_a_gpu_is_one_red_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["bench-airbench", "cifar10", "--out", "airbench.json"])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith("error: bench-airbench needs a CUDA GPU") and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "airbench.json").exists()
