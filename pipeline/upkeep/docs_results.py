"""The measured figures the docs show, as Markdown written from committed results files, never typed by hand.

- `reports/sample_figures.json`: each model's test figures after `make repro` on the embedded sample, written from
  `metrics/` by `pipeline dev sample-figures`;
- `reports/sample_range.json`: the same models' test accuracy over six runs, written by `scripts/sample_range.py`;
- `reports/repro_times.json`: where `make repro`'s time went, by stage group, written by `pipeline bench-repro --out`;
- `reports/tables/<name>.json`: any other table of measured figures (training and serving speed, memory at scale,
  export parity), its cells as measured, with the command and the machine that measured them.

Each file names the command that wrote it and the machine; re-measuring is writing the file again, then
`pipeline dev docs --write`.
"""

import json
import time
from pathlib import Path
from typing import Any

from pipeline.analysis.repro_times import TRAINING
from pipeline.config.params import Params
from pipeline.core.atomic import write_json
from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths

SAMPLE_FIGURES = Path("reports/sample_figures.json")
SAMPLE_RANGE = Path("reports/sample_range.json")
REPRO_TIMES = Path("reports/repro_times.json")
TABLES = Path("reports/tables")
SECONDS = ("dvc", "startup", "work", "total")  # the columns of a stage group's time
# Each recipe model, the data it trains on and the classic models trained on the same images.
RECIPES = {
    "cifar_best": ("CIFAR-10 sample, 1800 training images", ["cifar_cnn_bn", "cifar_resnet18"]),
    "catsdogs_best": ("dogs-vs-cats sample, colour 96x96, 500 a class", ["catsdogs_cnn"]),
}


def read_results(root: Path, relative: Path) -> dict[str, Any]:
    """A committed results file, or an error that names the command writing it."""
    path = root / relative
    if not path.is_file():
        raise PipelineError(f"{path}: missing; it is committed with the repository (see docs/explanation/performance.md)")
    result: dict[str, Any] = json.loads(path.read_text())
    return result


def sample_figures(params: Params, paths: Paths) -> dict[str, dict[str, Any]]:
    """Each sample model's budget and test figures, read from `metrics/` after `make repro`."""
    figures = {}
    for name in params.models:
        test_file = paths.test_metrics(name)
        if not test_file.is_file():
            raise PipelineError(f"{test_file}: missing; run `make repro` (or `dvc repro`) first")
        test = json.loads(test_file.read_text())
        classes = len(json.loads(paths.per_class(name).read_text()))
        figures[name] = {
            "budget": budget_text(params, name),
            "epoch": test["epoch"],
            "accuracy": round(test["accuracy"], 3),
            "macro_f1": round(test["macro"]["f1"], 3),
            "ece": round(test["ece"], 3),
            "ece_as_trained": round(test["calibration"]["before"]["ece"], 3),
            "temperature": round(test["calibration"]["temperature"], 3),
            "chance": round(1 / classes, 2),
        }
    return figures


def budget_text(params: Params, name: str) -> str:
    """What a model trains for on the sample: `10 epochs`, or `20 steps` when its epochs are cut short."""
    train = params.model(name).train
    return f"{train.epochs * train.steps_per_epoch} steps" if train.steps_per_epoch else f"{train.epochs} epochs"


def write_sample_figures(root: Path, params: Params, machine: str) -> Path:
    """Write `reports/sample_figures.json` from `metrics/`, keeping the notes of the file there (a few words on a
    model's budget, shown beside it in the table)."""
    target = root / SAMPLE_FIGURES
    notes = json.loads(target.read_text()).get("notes", {}) if target.is_file() else {}
    record = {
        "command": "make repro, then pipeline dev sample-figures",
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine,
        "notes": notes,
        "models": sample_figures(params, Paths(root)),
        "order": list(params.models),  # the table's rows, as params.yaml lists the models (the file's keys are sorted)
    }
    write_json(target, record)
    return target


def sample_table(root: Path) -> str:
    """The sample's results table: each model's figures and its test accuracy's range over six runs."""
    figures, ranges = read_results(root, SAMPLE_FIGURES), read_results(root, SAMPLE_RANGE)
    rows = [
        (
            "| model | sample budget | kept epoch | test accuracy | range over the 6 runs | macro F1 "
            "| ECE as trained → calibrated (temperature) | chance |"
        ),
        "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for name in figures.get("order", figures["models"]):
        row = figures["models"][name]
        low_high = ranges["range"].get(name)
        spread = f"{low_high[0]:.3f} to {low_high[1]:.3f}" if low_high else "(not on a sample)"
        note = figures["notes"].get(name)
        budget = f"{row['budget']} ({note})" if note else row["budget"]
        cells = [f"`{name}`", budget, str(row["epoch"]), f"{row['accuracy']:.3f}", spread]
        ece = f"{row['ece_as_trained']:.3f} → {row['ece']:.3f} ({row['temperature']:.2f})"
        if row["temperature"] == 1.0:
            ece = f"{row['ece']:.3f} (as trained)"
        cells += [f"{row['macro_f1']:.3f}", ece, f"{row['chance']:.2f}"]
        rows.append("| " + " | ".join(cells) + " |")
    source = (
        f"Written by `pipeline dev docs` from `{SAMPLE_FIGURES}` ({figures['command']}; {figures['machine']}, "
        f"{figures['date']}) and `{SAMPLE_RANGE}` (`scripts/sample_range.py`; {ranges['machine']}, {ranges['date']})."
    )
    return "\n".join(rows) + "\n\n" + source


def recipe_table(root: Path) -> str:
    """The recipe models on the sample beside the classic models trained on the same data, from the sample figures."""
    models = read_results(root, SAMPLE_FIGURES)["models"]
    rows = [
        "| model | data | budget | test accuracy | the classic model on the same data |",
        "| --- | --- | --- | ---: | --- |",
    ]
    for name, (data, classics) in RECIPES.items():
        beside = ", ".join(f"`{other}` {models[other]['accuracy']:.3f} ({models[other]['budget']})" for other in classics)
        rows.append(f"| `{name}` | {data} | {models[name]['budget']} | {models[name]['accuracy']:.3f} | {beside} |")
    return "\n".join(rows)


def repro_table(root: Path) -> str:
    """`make repro`'s time by stage group (DVC, start-up, work; how many of the stages ran in warm processes), with
    the measurement's command and machine."""
    times = read_results(root, REPRO_TIMES)
    rows = ["| stages | DVC s | start-up s | work s | total s |", "| --- | ---: | ---: | ---: | ---: |"]
    for group in times["groups"]:
        warm = f", {group['warm']} warm" if group.get("warm") else ""
        cells = [f"{group['stages']} ({group['count']}{warm})", *(f"{group[key]:.1f}" for key in SECONDS)]
        rows.append("| " + " | ".join(cells) + " |")
    every = times["all"]
    rows.append(f"| **all ({every['count']})** | " + " | ".join(f"**{every[key]:.1f}**" for key in SECONDS) + " |")
    return "\n".join(rows) + "\n\n" + f"Written by `pipeline dev docs` from `{REPRO_TIMES}`: {_measured(times)}."


def repro_summary(root: Path) -> str:
    """One sentence: how long `make repro` took from nothing, on what, and the share of it that was training."""
    times = read_results(root, REPRO_TIMES)
    wall = times["wall_s"]
    training = next(group["work"] for group in times["groups"] if group["stages"] == TRAINING)
    share = 100 * training / times["all"]["total"]
    return (
        f"`make repro` in a fresh clone, from nothing (the environment, the generated downloads and all "
        f"{times['all']['count']} stages), took **{int(wall // 60)} min {wall % 60:.0f} s** ({wall:.1f} s) on "
        f"{times['machine']}. Training is {training:.1f} s, {share:.0f}% of the stages' time."
    )


def _measured(times: dict[str, Any]) -> str:
    return f"{times['command']}, on {times['machine']}" + (f", {times['date']}" if times.get("date") else "")


def measured_table(root: Path, name: str) -> str:
    """A table of measured figures from `reports/tables/<name>.json`: its header and rows as measured, then the
    command and the machine that measured them."""
    table = read_results(root, TABLES / f"{name}.json")
    rows = ["| " + " | ".join(table["header"]) + " |", "|" + "---|" * len(table["header"])]
    rows += ["| " + " | ".join(row) + " |" for row in table["rows"]]
    return "\n".join(rows) + "\n\n" + f"Written by `pipeline dev docs` from `{TABLES / name}.json`: {_measured(table)}."
