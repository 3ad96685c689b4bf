"""`pipeline tune --workers N`'s worker processes: each its share of the cores and, where there are GPUs, one of
them; each the shared study's worker without a seed check (the workspace runs it once they are done)."""

from pathlib import Path

import pipeline.tuning.workers as workers_module
from pipeline.tuning.storage import Sharing, Where


def test_each_worker_gets_its_share_of_the_cores_and_one_gpu_round_robin(monkeypatch):
    monkeypatch.setattr(workers_module.os, "cpu_count", lambda: 16)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    envs = [workers_module._worker_env(n, 4) for n in range(4)]
    assert [env["OMP_NUM_THREADS"] for env in envs] == ["4"] * 4
    assert [env["CUDA_VISIBLE_DEVICES"] for env in envs] == ["3", "5", "3", "5"]


def test_without_gpus_no_worker_is_given_one(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert "CUDA_VISIBLE_DEVICES" not in {
        key for key, value in workers_module._worker_env(0, 2).items() if value
    }


def test_a_worker_is_the_shared_studys_and_runs_no_seed_check():
    where = Where("sqlite:////w/.dvc/tmp/tune/m.sqlite3", "s", Sharing(5, 20, 0))
    command = workers_module._worker_command("m", 4, Path("/w/space.yaml"), "median", where)
    text = " ".join(command)
    assert "--seeds 0" in text and "--storage sqlite:////w/.dvc/tmp/tune/m.sqlite3 --heartbeat 5 --retries 0" in text
    assert command[-4:] == ["--grace", "20", "--space", "/w/space.yaml"] and "--study s" in text
