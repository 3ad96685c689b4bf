"""Seeds in the experiments report: runs whose params differ only in the global `seed` are one setting run several
times; each setting's scores as mean ± standard deviation over its seeds, and a test of whether a difference between
two settings is more than seed noise.

Only the global `seed` is set aside: a run that changes `split.<dataset>.seed` (or any other key) is another
setting. The test is Welch's t-test (two-sided, unequal variances: `scipy.stats.ttest_ind(equal_var=False)`) on the
per-seed test accuracies of a setting against those of the best setting (the highest mean validation accuracy of
those with 2 seeds or more); a difference counts as real when p < 0.05 and each setting has at least 2 seeds. With k settings there are k - 1 tests
and no correction for multiple comparisons: read a lone p of 0.04 among many settings with care.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pipeline.analysis.markdown import cell, table

SEED = "seed"
ALPHA = 0.05
MIN_SEEDS = 2
TEST_NAME = "Welch's t-test (two-sided, unequal variances) on the per-seed test accuracies"


class Record(Protocol):
    """What a run needs for grouping: its label, its params as dotted keys, per model its scores."""

    label: str
    params: dict[str, Any]
    scores: dict[str, dict[str, float]]


@dataclass(frozen=True)
class Group:
    """The runs of one setting: the same params but for `seed`."""

    runs: list[Any]

    @property
    def seeds(self) -> list[Any]:
        """The global seed of each run."""
        return [run.params.get(SEED) for run in self.runs]

    def values(self, model: str, key: str) -> list[float]:
        """`key` of `model`'s scores (`val_acc`, `accuracy`, `loss`) of each run that has them."""
        return [run.scores[model][key] for run in self.runs if model in run.scores]


@dataclass(frozen=True)
class Spread:
    """Mean, sample standard deviation (n - 1; nan for one value) and count of some values."""

    mean: float
    std: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.4f}" if self.n < 2 else f"{self.mean:.4f} ± {self.std:.4f}"


@dataclass(frozen=True)
class Comparison:
    """A setting's test accuracy against the best setting's: the difference of means, Welch's p (None when there
    are too few seeds or no spread to test), and whether the difference is real."""

    difference: float
    p: float | None

    @property
    def real(self) -> bool:
        """p below ALPHA."""
        return self.p is not None and self.p < ALPHA


def group_runs(runs: Sequence[Record]) -> list[Group]:
    """The runs grouped by their params less `seed`, groups in the order of their first run."""
    groups: dict[tuple, list[Any]] = {}
    for run in runs:
        key = tuple(sorted((name, cell(value)) for name, value in run.params.items() if name != SEED))
        groups.setdefault(key, []).append(run)
    return [Group(members) for members in groups.values()]


def spread(values: Sequence[float]) -> Spread:
    """Mean ± sample standard deviation of `values` (nan for the mean of none and the spread of one)."""
    n = len(values)
    mean = sum(values) / n if n else math.nan
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else math.nan
    return Spread(mean, std, n)


def welch_p(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Welch's two-sided p-value for equal means of `a` and `b`; None with fewer than MIN_SEEDS values in either,
    or when neither varies (scipy has no answer then)."""
    if min(len(a), len(b)) < MIN_SEEDS or spread(a).std == spread(b).std == 0:
        return None
    from scipy.stats import ttest_ind

    p = float(ttest_ind(a, b, equal_var=False).pvalue)
    return None if math.isnan(p) else p


def best_group(groups: list[Group], model: str) -> Group:
    """The group with the highest mean validation accuracy for `model` among those with at least MIN_SEEDS runs
    (all, when none has; the first on a tie), so that one lucky run is not the reference; test plays no part."""
    scored = [group for group in groups if group.values(model, "val_acc")]
    repeated = [group for group in scored if len(group.values(model, "val_acc")) >= MIN_SEEDS]
    return max(repeated or scored, key=lambda group: spread(group.values(model, "val_acc")).mean)


def compare(group: Group, best: Group, model: str) -> Comparison:
    """`group`'s test accuracy against `best`'s: difference of the means and Welch's p."""
    mine, theirs = group.values(model, "accuracy"), best.values(model, "accuracy")
    return Comparison(spread(mine).mean - spread(theirs).mean, welch_p(mine, theirs))


def setting_keys(groups: list[Group]) -> list[str]:
    """The dotted keys, other than `seed`, whose value differs between the groups' runs."""
    runs = [run for group in groups for run in group.runs]
    keys = list(dict.fromkeys(key for run in runs for key in run.params if key != SEED))
    return [key for key in keys if len({cell(run.params.get(key, "—")) for run in runs}) > 1]


def section(runs: Sequence[Record], models: list[str]) -> list[str]:
    """The report's "Seeds" section as Markdown lines: per model, one row per setting (mean ± sd over its seeds,
    the number of seeds, and the difference to the best setting with its p and verdict); nothing when no setting
    was run with more than one seed."""
    groups = group_runs(runs)
    if all(len(group.runs) < MIN_SEEDS for group in groups):
        return []
    keys = setting_keys(groups)
    lines = [
        "",
        "## Seeds: signal or noise?",
        "",
        (
            f"Runs whose params differ only in the global `{SEED}` are one setting (`split.*.seed` and every other "
            "key make another setting). Per setting: validation and test accuracy as mean ± standard deviation over "
            f"its seeds. The best setting has the highest mean validation accuracy (of those with {MIN_SEEDS} seeds "
            f"or more); each other setting's test accuracy is compared with it by {TEST_NAME}: **real** when "
            f"p < {ALPHA} with at least {MIN_SEEDS} seeds on each side, else within the noise. No correction is made "
            "for testing several settings."
        ),
    ]
    for model in models:
        lines += _model_table(groups, keys, model)
    return lines


def _model_table(groups: list[Group], keys: list[str], model: str) -> list[str]:
    scored = [group for group in groups if group.values(model, "accuracy")]
    if not scored:
        return []
    best = best_group(scored, model)
    header = ["setting", *(f"`{key}`" for key in keys), "seeds", "val acc", "test acc", "vs best (test)", "p", "verdict"]
    rows = []
    for number, group in enumerate(scored, start=1):
        first = group.runs[0]
        values = [cell(first.params.get(key, "—")) for key in keys]
        seeds = ", ".join(str(seed) for seed in group.seeds)
        stats = [str(spread(group.values(model, "val_acc"))), str(spread(group.values(model, "accuracy")))]
        label = f"{number}: `{first.label}`" + (f" +{len(group.runs) - 1}" if len(group.runs) > 1 else "")
        if group is best:
            rows.append([label, *values, seeds, f"**{stats[0]}**", stats[1], "best", "", ""])
            continue
        result = compare(group, best, model)
        p = "" if result.p is None else f"{result.p:.3f}"
        verdict = "**real**" if result.real else (
            "within noise" if result.p is not None else f"too few seeds (< {MIN_SEEDS}) or no spread"
        )
        rows.append([label, *values, seeds, *stats, f"{result.difference:+.4f}", p, verdict])
    return ["", f"### {model}", "", *table(header, rows)]
