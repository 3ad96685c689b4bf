"""Command `report`: the repository's DVC experiments as one Markdown page.

A table with the params that differ between runs and, per model, the validation accuracy of the kept epoch and
the test accuracy and loss beside it; the best run of each model is chosen, and bolded, by validation accuracy,
never by test (choosing by the test set would make its score a biased estimate). Then a warning for runs whose
BatchNorm check shows a large train/eval-mode gap, and per model the learning curves of the baseline and of the
best run on one chart. Runs that differ only in `seed` are grouped too, as mean ± sd over their seeds, with each
difference tested against seed noise (`pipeline.analysis.seeds`). It reads what `dvc exp show` reads: the
baseline commit (HEAD) and the experiments derived from it.
"""

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.analysis.markdown import cell, row
from pipeline.analysis.plots import compared_curves, save_png
from pipeline.analysis.seeds import section as seeds_section
from pipeline.core.atomic import write_text
from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths

SCORES = ("accuracy", "loss")  # test.json
VALIDATION = "val/acc"  # of the kept epoch, in the train stage's metrics.json (`best`)
CURVES = ("train/loss", "val/loss", "train/acc", "val/acc")
MISSING = "—"


@dataclass(frozen=True, eq=False)
class Run:
    """One row of the report: a baseline or an experiment, its params (dotted keys) and per model the kept
    epoch's validation accuracy (`val_acc`) and the test scores."""

    name: str
    rev: str | None
    params: dict[str, Any]
    scores: dict[str, dict[str, float]]
    mode_gaps: dict[str, dict[str, Any]]

    @property
    def label(self) -> str:
        return f"{self.name} ({self.rev[:7]})" if self.rev and self.name != self.rev else self.name


def report(
    out: Path, models: list[str] | None = None, experiments: list[str] | None = None, root: Path = Path(".")
) -> Path:
    """Write the experiments report to `out` (charts beside it in `<out stem>/`); returns `out`.

    `experiments` keeps the baseline and only the named experiments; `models`, only those models' columns.
    """
    runs = _chosen(collect_runs(root), experiments)
    shown = models or changed_models(runs) or model_names(runs)
    unknown = [model for model in shown if model not in model_names(runs)]
    if unknown:
        raise PipelineError(
            f"--model {', '.join(unknown)}: no test results in any run; models with results: "
            f"{', '.join(model_names(runs))}"
        )
    charts = {model: _chart(root, runs, model, out) for model in shown}
    write_text(out, markdown(runs, shown, charts))
    return out


def _chosen(runs: list[Run], names: list[str] | None) -> list[Run]:
    if not names:
        return runs
    unknown = [name for name in names if name not in {run.name for run in runs[1:]}]
    if unknown:
        raise PipelineError(
            f"--exp {', '.join(unknown)}: no such finished experiment; known: {', '.join(r.name for r in runs[1:])}"
        )
    return [runs[0], *(run for run in runs[1:] if run.name in names)]


def collect_runs(root: Path) -> list[Run]:
    """The baseline commit and its finished experiments (oldest first), as `dvc exp show` lists them.

    When the baseline commit has no results (its dvc.lock was never committed after `dvc repro`), the
    workspace's results stand in for it.
    """
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(str(root)) as repo:
            states = [state.dumpd() for state in repo.experiments.show(hide_queued=True, hide_failed=True)]
    except DvcException as exc:
        raise PipelineError(f"{root.resolve()}: cannot read DVC experiments ({exc})") from None
    workspace, baselines = states[0], states[1:]
    runs = [run for state in baselines for run in _runs(state)]
    if runs and not runs[0].scores:
        runs[0] = _run(workspace, "workspace", None)
    if not any(run.scores for run in runs):
        raise PipelineError(
            f"{root.resolve()}: no experiment has test results; run `dvc repro` or `dvc exp run` first"
        )
    return runs


def _runs(baseline: dict) -> Iterator[Run]:
    yield _run(baseline, baseline.get("name") or baseline["rev"], baseline["rev"])
    experiments = [exp for group in baseline.get("experiments") or [] for exp in group["revs"]]
    for exp in sorted(experiments, key=lambda exp: str((exp.get("data") or {}).get("timestamp") or "")):
        yield _run(exp, exp.get("name") or exp["rev"], exp["rev"])


def _run(state: dict, name: str, rev: str | None) -> Run:
    data = state.get("data") or {}
    params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
    metrics = data.get("metrics") or {}
    scores, mode_gaps = {}, {}
    for model in params.get("models") or {}:
        figures = _metrics_file(metrics, Paths().test_metrics(model))
        trained = _metrics_file(metrics, Paths().train_dir(model) / "metrics.json")
        validation = (trained.get("best") or {}).get(VALIDATION)
        if all(key in figures for key in SCORES) and validation is not None:
            scores[model] = {"val_acc": float(validation), **{key: float(figures[key]) for key in SCORES}}
        check = trained.get("bn_check")
        if check:
            mode_gaps[model] = check
    return Run(name=name, rev=rev, params=dict(flatten(params)), scores=scores, mode_gaps=mode_gaps)


def _metrics_file(metrics: dict, path: Path) -> dict:
    return (metrics.get(path.as_posix()) or {}).get("data") or {}


def flatten(params: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Nested params as (dotted key, value) pairs; lists stay whole values."""
    for key, value in params.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from flatten(value, f"{dotted}.")
        else:
            yield dotted, value


def keys_that_vary(runs: list[Run]) -> list[str]:
    """The dotted keys whose value is not the same in every run, in the baseline's order."""
    keys = list(dict.fromkeys(key for run in runs for key in run.params))
    return [key for key in keys if len({cell(run.params.get(key, MISSING)) for run in runs}) > 1]


def changed_models(runs: list[Run]) -> list[str]:
    """The models whose test scores are not the same in every run: the ones the experiments are about."""
    return [model for model in model_names(runs) if len({_key(run.scores.get(model)) for run in runs}) > 1]


def best_run(runs: list[Run], model: str) -> Run:
    """The run with the highest validation accuracy for `model` (the earliest on a tie, so the baseline wins
    ties); the test scores play no part in the choice."""
    scored = [run for run in runs if model in run.scores]
    return max(scored, key=lambda run: run.scores[model]["val_acc"])


def markdown(runs: list[Run], models: list[str], charts: dict[str, str | None]) -> str:
    """The report page: the table, the models left out of it, and a chart per model."""
    keys = keys_that_vary(runs)
    best = {model: best_run(runs, model) for model in models}
    header = ["experiment", *(f"`{key}`" for key in keys), *(f"{m} {s}" for m in models for s in ("val acc", "test acc", "test loss"))]
    lines = [
        "# Experiments",
        "",
        f"{len(runs)} runs: the baseline `{runs[0].label}` and the experiments derived from it "
        "(`dvc exp show`). Per model, the validation accuracy of the kept epoch, then the test accuracy and loss; "
        "the best run of each model, chosen by validation accuracy (never by test), in bold.",
        "",
        row(header),
        row(["---"] * len(header)),
    ]
    for run in runs:
        cells = [f"`{run.label}`", *(cell(run.params.get(key, MISSING)) for key in keys)]
        for model in models:
            cells += _scores(run, model, bold=run is best[model])
        lines.append(row(cells))
    unchanged = [model for model in model_names(runs) if model not in models]
    if unchanged:
        lines += ["", f"Same test scores in every run, so left out: {', '.join(unchanged)}."]
    lines += _mode_gap_flags(runs, models)
    lines += seeds_section(runs, models)
    for model in models:
        lines += ["", f"## {model}", "", _chart_caption(runs[0], best[model], model)]
        if charts[model]:
            lines += ["", f"![{model} learning curves]({charts[model]})"]
    return "\n".join(lines) + "\n"


def _mode_gap_flags(runs: list[Run], models: list[str]) -> list[str]:
    """A warning per run and model whose training split scores much worse in eval mode than in train mode."""
    flagged = [
        (run, model, run.mode_gaps[model])
        for run in runs
        for model in models
        if run.mode_gaps.get(model, {}).get("large")
    ]
    if not flagged:
        return []
    lines = [
        "",
        "**BatchNorm check:** these runs score their own training split much worse in eval mode than in train "
        "mode; their running statistics do not match the training batches (see `pipeline sanity overfit`):",
        "",
    ]
    for run, model, gap in flagged:
        lines.append(
            f"- `{run.label}` {model}: train-mode accuracy {gap['train_mode_acc']:.4f}, eval-mode "
            f"{gap['eval_mode_acc']:.4f} (gap {gap['acc_gap']:.4f})"
        )
    return lines


def _scores(run: Run, model: str, bold: bool) -> list[str]:
    if model not in run.scores:
        return [MISSING, MISSING, MISSING]
    validation, accuracy, loss = (f"{run.scores[model][key]:.4f}" for key in ("val_acc", *SCORES))
    return [f"**{validation}**" if bold else validation, accuracy, loss]


def _chart_caption(baseline: Run, best: Run, model: str) -> str:
    """Which run validation chose, and what it scores on test."""
    chosen = best.scores[model]
    if best is baseline:
        return (
            f"The baseline `{baseline.label}` has the best validation accuracy ({chosen['val_acc']:.4f}; "
            f"test accuracy {chosen['accuracy']:.4f})."
        )
    gain = chosen["accuracy"] - baseline.scores.get(model, {}).get("accuracy", 0.0)
    return (
        f"Best run by validation accuracy `{best.label}` ({chosen['val_acc']:.4f}): test accuracy "
        f"{chosen['accuracy']:.4f} ({gain:+.4f} on the baseline)."
    )


def _chart(root: Path, runs: list[Run], model: str, out: Path) -> str | None:
    """The learning curves of the baseline and the best run as a PNG beside `out`; its relative path."""
    chosen = dict.fromkeys([runs[0], best_run(runs, model)])
    histories = {run.label: history for run in chosen if (history := read_history(root, run.rev, model))}
    if not histories:
        return None
    path = out.parent / out.stem / f"{model}.png"
    save_png(compared_curves(histories, f"{model}: baseline and best run"), path)
    return path.relative_to(out.parent).as_posix()


def read_history(root: Path, rev: str | None, model: str) -> list[dict[str, float]]:
    """The per-epoch learning curves DVCLive logged for `model` in revision `rev` (None: the workspace)."""
    import dvc.api
    from dvc.exceptions import DvcException

    columns: dict[int, dict[str, float]] = {}
    for name in CURVES:
        path = (Paths().train_dir(model) / "plots" / "metrics" / f"{name}.tsv").as_posix()
        try:
            text = dvc.api.read(path, repo=str(root), rev=rev)
        except (DvcException, OSError):
            return []
        for record in csv.DictReader(io.StringIO(text), delimiter="\t"):
            columns.setdefault(int(record["step"]), {"epoch": int(record["step"])})[name] = float(record[name.split("/")[1]])
    return [columns[step] for step in sorted(columns)]


def model_names(runs: list[Run]) -> list[str]:
    """Every model with test results in some run, in params order."""
    return list(dict.fromkeys(model for run in runs for model in run.scores))


def _key(scores: dict[str, float] | None) -> tuple:
    return tuple(sorted((scores or {}).items()))
