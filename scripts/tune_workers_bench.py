"""Wall time of `pipeline tune cifar_mlp --workers 1` against `--workers 2`, 4 trials each, on the embedded sample.

Usage: `python scripts/tune_workers_bench.py [--trials 4] [--model cifar_mlp]` (CPU heavy: minutes). Each worker
count gets its own temporary clone of this repository's last commit with its own DVC cache, so that no trial is
taken from DVC's run-cache of the other timing's; the data stages are run there first (`dvc repro
preprocess@<dataset>`, committed, not timed), then the study is timed: no pruning (every trial trains every epoch),
no seed check. Prints one line per worker count and the speed-up. The clones are removed afterwards.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
IDENTITY = {key: "bench" for key in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME")} | {
    key: "bench@example.com" for key in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL")
}
DATASET = {"cifar_mlp": "cifar10", "cifar_cnn": "cifar10", "cifar_cnn_bn": "cifar10", "catsdogs_cnn": "catsdogs"}


def run(cwd: Path, *command: str) -> None:
    """Run `command` in `cwd` with this Python's tools first on PATH and a git identity; stop on a failure."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    subprocess.run(command, cwd=cwd, check=True, env={**os.environ, **IDENTITY, "PATH": path})


def prepared_clone(clone: Path, dataset: str) -> Path:
    """A clone of the repository's last commit at `clone` (its own DVC cache) with the data stages of `dataset` run
    and committed."""
    run(REPO, "git", "clone", "-q", str(REPO), str(clone))
    run(clone, sys.executable, "-m", "dvc", "repro", "-q", f"preprocess@{dataset}")
    run(clone, "git", "add", "-A")
    run(clone, "git", "commit", "-qm", "data", "--allow-empty")  # dvc.lock may be the same already
    return clone


def timed_tune(clone: Path, model: str, trials: int, workers: int) -> float:
    """Seconds `pipeline tune` takes with `workers` workers on a new study of `trials` trials."""
    started = time.perf_counter()
    run(clone, sys.executable, "-m", "pipeline", "tune", model, "--workers", str(workers), "--trials", str(trials),
        "--seeds", "0", "--pruner", "none", "--study", f"bench-{model}-w{workers}")
    return time.perf_counter() - started


def main() -> None:
    """Time one worker, then two, and print both and the speed-up."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cifar_mlp", choices=sorted(DATASET))
    parser.add_argument("--trials", type=int, default=4)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="tune-bench-"))
    try:
        clones = {workers: prepared_clone(folder / f"w{workers}", DATASET[args.model]) for workers in (1, 2)}
        seconds = {workers: timed_tune(clone, args.model, args.trials, workers) for workers, clone in clones.items()}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    for workers, wall in seconds.items():
        print(f"pipeline tune {args.model} --workers {workers} --trials {args.trials}: {wall:.0f} s")
    print(f"speed-up with 2 workers: {seconds[1] / seconds[2]:.2f}x")


if __name__ == "__main__":
    main()
