"""How robust are the embedded sample's figures? Train and evaluate models again under other numerics and seeds.

    uv run python scripts/sample_range.py                      # every model on a sample, every variant
    uv run python scripts/sample_range.py --models catsdogs_cnn --variants onednn-off,seed=1

Each variant runs the stage modules (`python -m pipeline.stages.<stage>`, as `dvc repro` does) in a scratch folder of
its own, with this repository's code and params.yaml:

- `default`: as `dvc repro` runs them;
- `onednn-off`: `torch.backends.mkldnn.enabled = False`, so PyTorch takes its other float kernels (what another CPU
  type's instruction set can make it do);
- `one-thread`: `torch.set_num_threads(1)` (another order of float sums);
- `seed=N`: the global `seed` set to N, which draws another sample, split, initial weights and batch order (the data
  stages run first, in the scratch folder).

The numerics variants train on the preprocessed data of `--root` (this repository: run `make repro` first). It prints a table of
test accuracy per model and variant with each model's range, checks the sample's lessons (`THRESHOLDS`, `ORDER`) on
the minimum over the variants, and writes the figures to `--out` (JSON) with the machine and the command. A report
there already, of the same variants, keeps its other models' figures (each model's depend only on its own block and
dataset), so that one model can be run again after its budget changed; the check covers them all.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Collection
from pathlib import Path

from pipeline.config.params import Params, load_params

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ("default", "onednn-off", "one-thread", "seed=1", "seed=2", "seed=3")
# The figures the sample must show on any CPU: test accuracy at least this, on the worst variant.
THRESHOLDS = {"catsdogs_cnn": 0.65}
# Each must score below the next within every variant (the classic lesson: an MLP < a convnet < the convnet with
# BatchNorm and dropout < the recipe).
ORDER = ("cifar_mlp", "cifar_cnn", "cifar_cnn_bn", "cifar_best")
BOOT = {
    "default": "",
    "onednn-off": "import torch; torch.backends.mkldnn.enabled = False; ",
    "one-thread": "import torch; torch.set_num_threads(1); ",
}


def main() -> int:
    """Parse the arguments, run every variant, print and write the table; 1 when a threshold or the order fails."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", help="comma-separated model names (default: every model on a sample)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--root", type=Path, default=REPO, help="where params.yaml and data/ are (default: here)")
    parser.add_argument("--out", type=Path, help="the JSON report (default: ROOT/reports/sample_range.json)")
    args = parser.parse_args()
    root = args.root.resolve()
    params = load_params(root / "params.yaml")
    models = args.models.split(",") if args.models else [name for name in params.models if params.trains_on_sample(name)]
    variants = args.variants.split(",")
    unknown = [name for name in variants if name not in VARIANTS and not name.startswith("seed=")]
    if unknown:
        parser.error(f"unknown variant {unknown[0]!r}; use {', '.join(VARIANTS)} (or seed=N)")
    out = args.out or root / "reports" / "sample_range.json"
    figures = {variant: run_variant(root, variant, models, params) for variant in variants}
    figures, commands = merged(out, figures, params.models)
    every = [name for name in params.models if name in figures[variants[0]]]
    print(render(figures, every))
    failures = check(figures, every)
    for failure in failures:
        print(f"FAIL: {failure}")
    write_report(out, figures, every, failures, commands)
    return 1 if failures else 0


def run_variant(repo: Path, variant: str, models: list[str], params: Params) -> dict[str, float]:
    """Test accuracy per model under one variant, each trained and evaluated in a scratch folder with `repo`'s
    params (and, but for a seed variant, its preprocessed data)."""
    with tempfile.TemporaryDirectory(prefix=f"sample-range-{variant}-") as scratch:
        root = Path(scratch)
        shutil.copy(repo / "params.yaml", root / "params.yaml")
        overrides: list[str] = []
        datasets = sorted({params.models[name].dataset for name in models})
        if variant.startswith("seed="):
            overrides = ["-S", f"seed={int(variant.split('=')[1])}"]
            for dataset in datasets:
                for stage in ("download", "settings", "split", "preprocess"):
                    stage_command(root, "", stage, dataset, overrides)
        else:
            for dataset in datasets:
                link_data(repo, root, dataset)
        figures, boot = {}, BOOT.get(variant, "")
        for name in models:
            started = time.monotonic()
            stage_command(root, boot, "train", name, overrides)
            stage_command(root, boot, "evaluate", name, overrides)
            figures[name] = json.loads((root / "metrics" / name / "test.json").read_text())["accuracy"]
            print(f"{variant:>12}  {name:<16} {figures[name]:.3f}  ({time.monotonic() - started:.0f} s)", flush=True)
        return figures


def merged(out: Path, figures: dict[str, dict[str, float]], known: Collection[str]) -> tuple[dict, list[str]]:
    """These figures over those of the report at `out` when it has the same variants (its models not run now, and
    still `known` to params, kept), and the commands that measured them."""
    command = f"python scripts/sample_range.py {' '.join(sys.argv[1:])}".strip() + f"  # {time.strftime('%Y-%m-%d')}"
    previous = json.loads(out.read_text()) if out.is_file() else {}
    if set(previous.get("test_accuracy", {})) != set(figures):
        return figures, [command]
    kept = {
        variant: {name: value for name, value in run.items() if name in known}
        for variant, run in previous["test_accuracy"].items()
    }
    return {variant: {**kept[variant], **figures[variant]} for variant in figures}, [*previous["commands"], command]


def link_data(repo: Path, root: Path, dataset: str) -> None:
    """`repo`'s preprocessed data and resolved settings of `dataset`, linked into the scratch folder `root`."""
    for part in ("processed", "settings"):
        source = repo / "data" / part / dataset
        if not source.is_dir():
            raise SystemExit(f"{source} is missing: run `make repro` (or `dvc repro`) first")
        (root / "data" / part).mkdir(parents=True, exist_ok=True)
        (root / "data" / part / dataset).symlink_to(source)


def stage_command(root: Path, boot: str, stage: str, name: str, overrides: list[str]) -> None:
    """Run one stage command in `root` with this repository's code, after `boot` (the variant's torch settings)."""
    code = f"{boot}import runpy; runpy.run_module('pipeline.stages.{stage}', run_name='__main__', alter_sys=True)"
    command = [sys.executable, "-c", code, name, *overrides]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("DVC_STAGE", None)
    result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, check=False)
    if result.returncode:
        raise SystemExit(f"{stage} {name} {' '.join(overrides)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")


def render(figures: dict[str, dict[str, float]], models: list[str]) -> str:
    """A Markdown table: a row per model, a column per variant, then the range."""
    variants = list(figures)
    rows = ["| model | " + " | ".join(variants) + " | range |", "|---" * (len(variants) + 2) + "|"]
    for name in models:
        values = [figures[variant][name] for variant in variants]
        cells = " | ".join(f"{value:.3f}" for value in values)
        rows.append(f"| `{name}` | {cells} | {min(values):.3f} to {max(values):.3f} |")
    return "\n".join(rows)


def check(figures: dict[str, dict[str, float]], models: list[str]) -> list[str]:
    """The thresholds on each model's worst variant, and the order of `ORDER` within every variant."""
    failures = []
    for name, floor in THRESHOLDS.items():
        if name in models and (worst := min(run[name] for run in figures.values())) < floor:
            failures.append(f"{name}: {worst:.3f} on its worst variant, below {floor}")
    ordered = [name for name in ORDER if name in models]
    for variant, run in figures.items():
        for lower, higher in zip(ordered, ordered[1:]):
            if run[lower] >= run[higher]:
                failures.append(f"{variant}: {lower} {run[lower]:.3f} is not below {higher} {run[higher]:.3f}")
    return failures


def write_report(
    out: Path, figures: dict[str, dict[str, float]], models: list[str], failures: list[str], commands: list[str]
) -> None:
    """The figures with the commands that measured them, the machine and the date, as JSON."""
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "commands": commands,
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.processor() or platform.machine()}, {cpu_name()}, {os.cpu_count()} cores",
        "test_accuracy": figures,
        "range": {name: [min(r[name] for r in figures.values()), max(r[name] for r in figures.values())] for name in models},
        "failures": failures,
    }
    out.write_text(json.dumps(report, indent=2) + "\n")


def cpu_name() -> str:
    """The CPU's model name (Linux), else what platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
