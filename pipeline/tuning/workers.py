"""`pipeline tune --workers N`: N worker processes on this machine drawing trials from one study.

Two `dvc exp run` cannot share a workspace (each rewrites params.yaml), so each worker runs in its own clone of the
repository's last commit under `.dvc/tmp/tune/workers/<i>` (as `dvc queue` runs experiments from the commit),
with the workspace's DVC cache as its cache (outputs are stored once) and the workspace's study storage (its SQLite
file, or --storage). Each worker gets `cores / N` CPU threads and, where there are GPUs, one of them
(`CUDA_VISIBLE_DEVICES`), round robin. Once they are done, their experiments' git refs are fetched into the
workspace (`dvc exp show` lists them; pushed with --push), and the seed check, figures and summary run here.
"""

import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths
from pipeline.tuning.storage import Where, study_storage, url_of

EXPERIMENT_REFS = "+refs/exps/*:refs/exps/*"  # where DVC keeps experiments in git


def tune_with_workers(
    paths: Paths, model: str, trials: int, space_file: Path | None, seeds: int, pruner: str, where: Where,
    workers: int,
) -> dict[str, Any]:
    """The study run by `workers` processes in clones of the workspace, then its seed check, figures and summary
    here (see the module's docstring); returns the summary."""
    from pipeline.tuning.trials import open_study, tune_in_repo

    storage = study_storage(paths.root.resolve(), model, where)
    shared = replace(where, storage=url_of(storage), push=False)
    open_study(paths, model, pruner, where)  # from here: the baseline params, a lone study's leftovers failed
    space = None if space_file is None else space_file.resolve()
    folder = paths.root.resolve() / ".dvc" / "tmp" / "tune" / "workers"
    clones = [_clone(paths.root, folder / str(n)) for n in range(workers)]
    command = _worker_command(model, trials, space, pruner, shared)
    processes = [_start(clone, command, _worker_env(n, workers)) for n, clone in enumerate(clones)]
    _wait(processes, clones)
    for clone in clones:
        _git(paths.root, "fetch", "-q", str(clone), EXPERIMENT_REFS)
    return tune_in_repo(paths, model, trials, space_file, seeds, pruner, replace(shared, push=where.push))


def _clone(root: Path, clone: Path) -> Path:
    """A fresh clone of `root`'s last commit at `clone`, using `root`'s DVC cache."""
    if clone.exists():
        shutil.rmtree(clone)
    clone.parent.mkdir(parents=True, exist_ok=True)
    _git(root, "clone", "-q", str(root), str(clone))
    cache = _run(root, sys.executable, "-m", "dvc", "cache", "dir").strip()
    _run(clone, sys.executable, "-m", "dvc", "cache", "dir", "--local", cache)
    return clone


def _worker_command(model: str, trials: int, space: Path | None, pruner: str, where: Where) -> list[str]:
    """`pipeline tune` as each worker runs it: the shared study, no seed check (the workspace runs it)."""
    sharing = where.sharing
    command = [
        sys.executable, "-m", "pipeline", "tune", model, "--trials", str(trials), "--seeds", "0", "--pruner", pruner,
        "--storage", str(where.storage), "--heartbeat", str(sharing.heartbeat_s), "--retries", str(sharing.retries),
    ]
    command += [] if where.study is None else ["--study", where.study]
    command += [] if sharing.grace_s is None else ["--grace", str(sharing.grace_s)]
    return command + ([] if space is None else ["--space", str(space)])


def _worker_env(n: int, workers: int) -> dict[str, str]:
    """Worker `n`'s environment: its share of the CPU threads and, where there are GPUs, one of them."""
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    gpus = _gpus()
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = gpus[n % len(gpus)]
    return env


def _gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them (none without CUDA)."""
    import torch

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [gpu for gpu in visible.split(",") if gpu.strip()]
    return [str(n) for n in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def _start(clone: Path, command: list[str], env: dict[str, str]) -> subprocess.Popen:
    """A worker started in `clone`, its output in `clone`.log."""
    with clone.with_suffix(".log").open("w") as log:
        return subprocess.Popen(command, cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT)


def _wait(processes: list[subprocess.Popen], clones: list[Path]) -> None:
    """Wait for every worker; one that failed is an error naming its log. Ctrl-C stops them all."""
    try:
        codes = [process.wait() for process in processes]
    except KeyboardInterrupt:
        for process in processes:
            process.terminate()
        raise
    failed = [clone.with_suffix(".log") for clone, code in zip(clones, codes) if code != 0]
    if failed:
        last = failed[0].read_text().strip().splitlines()[-1:] or ["(no output)"]
        raise PipelineError(f"tune workers failed (logs: {', '.join(map(str, failed))}); the first said: {last[0]}")


def _git(cwd: Path, *args: str) -> str:
    """Run git in `cwd`; its output, or a PipelineError with git's message."""
    return _run(cwd, "git", *args)


def _run(cwd: Path, *command: str) -> str:
    """Run `command` in `cwd`; its stdout, or a PipelineError with its output's end."""
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PipelineError(f"{' '.join(command[:4])} failed in {cwd}: {(done.stderr or done.stdout).strip()[-500:]}")
    return done.stdout
