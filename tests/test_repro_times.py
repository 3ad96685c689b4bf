"""Stage timing: what a stage run by DVC records (`pipeline.core.stage_times`) and how `pipeline bench-repro`
(`pipeline.analysis.repro_times`) splits the last run."""

import json
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from pipeline.analysis.repro_times import last_run, stage_times_table
from pipeline.core.errors import PipelineError
from pipeline.core.stage_times import LOG, StageTime, process_created, read_stage_times, record_stage


def _write(root: Path, *lines: StageTime) -> None:
    path = root / LOG
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        for line in lines:
            out.write(json.dumps(line.__dict__) + "\n")


def _line(stage: str, created: float, imported: float, ended: float, runner: str = "7:100.000", started: float = 100):
    return StageTime(stage, created, imported, ended, runner, started)


def test_a_stage_outside_dvc_records_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("DVC_STAGE", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    record_stage(0.0)
    assert not (tmp_path / LOG).exists()


def test_a_stage_run_by_dvc_appends_its_line(tmp_path, monkeypatch):
    monkeypatch.setenv("DVC_STAGE", "train@cifar_mlp")
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    record_stage(1e12)
    record_stage(1e12)
    times = read_stage_times(tmp_path)
    assert [line.stage for line in times] == ["train@cifar_mlp"] * 2
    assert times[0].created <= times[0].ended and times[0].runner == times[1].runner


def test_torchrun_workers_leave_the_recording_to_their_launcher(tmp_path, monkeypatch):
    monkeypatch.setenv("DVC_STAGE", "train@cifar_mlp")
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "1")
    record_stage(0.0)
    assert read_stage_times(tmp_path) == []


def test_the_last_run_is_split_into_dvc_start_up_and_work(tmp_path):
    _write(
        tmp_path,
        _line("train@old", 10, 11, 20, runner="5:1.000", started=1),
        _line("train@a", 110, 112, 150),
        _line("evaluate@a", 151.5, 154, 160),
    )
    (tmp_path / LOG).open("a").write("not json\n")
    splits = last_run(tmp_path)
    assert [split.stage for split in splits] == ["train@a", "evaluate@a"]
    first, second = splits
    assert (first.dvc, first.startup, first.work) == (10, 2, 38)
    assert (second.dvc, second.startup, second.work) == (1.5, 2.5, 6)
    text = stage_times_table(splits)
    assert "train (1)" in text and "evaluate (1)" in text
    assert "2 stages in 60.0 s: training 38.0 s (63%)" in text


def test_no_run_yet_says_what_to_do(tmp_path):
    with pytest.raises(PipelineError, match="run `dvc repro`"):
        last_run(tmp_path)


def test_a_process_creation_time_is_to_the_tick_not_the_boot_seconds_rounding():
    """psutil's create_time can be up to a second early (the boot time in whole seconds); a child started now must be
    seen as created between just before its start and when it answers."""
    before = time.time()
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        created = process_created(psutil.Process(child.pid))
        assert before - 0.05 <= created <= time.time() + 0.05
    finally:
        child.communicate(b"")
