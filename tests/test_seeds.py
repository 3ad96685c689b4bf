"""Seeds in the report: grouping runs that differ only in `seed`, mean ± sd, and Welch's test, on hand-made runs."""

import math

import pytest
from scipy.stats import ttest_ind

from pipeline.analysis.report import Run, markdown
from pipeline.analysis.seeds import (
    best_group,
    compare,
    group_runs,
    section,
    setting_keys,
    spread,
    welch_p,
)


def _run(name: str, seed: int, hflip: float, val: float, test: float, **params) -> Run:
    return Run(
        name=name,
        rev=None,
        params={"seed": seed, "aug.hflip": hflip, "models.cnn.dataset": "catsdogs", **params},
        scores={"cnn": {"val_acc": val, "accuracy": test, "loss": 0.5}},
        mode_gaps={},
    )


NOISY = [  # hflip 0.5 is better by 0.01 on average, but seed noise is larger than that
    _run("base", 42, 0.0, 0.70, 0.70), _run("a1", 1, 0.0, 0.74, 0.73), _run("a2", 2, 0.0, 0.66, 0.68),
    _run("b0", 42, 0.5, 0.73, 0.75), _run("b1", 1, 0.5, 0.69, 0.67), _run("b2", 2, 0.5, 0.72, 0.72),
]
CLEAR = [  # dropout on wins by 0.10 with a spread of about 0.01
    _run("c0", 42, 0.0, 0.70, 0.70), _run("c1", 1, 0.0, 0.71, 0.71), _run("c2", 2, 0.0, 0.69, 0.70),
    _run("d0", 42, 0.0, 0.80, 0.80, dropout=0.5), _run("d1", 1, 0.0, 0.81, 0.81, dropout=0.5),
    _run("d2", 2, 0.0, 0.79, 0.80, dropout=0.5),
]


def test_runs_that_differ_only_in_seed_form_one_group():
    groups = group_runs(NOISY)
    assert [[run.name for run in group.runs] for group in groups] == [["base", "a1", "a2"], ["b0", "b1", "b2"]]
    assert groups[0].seeds == [42, 1, 2]
    assert setting_keys(groups) == ["aug.hflip"]


def test_a_split_seed_makes_another_setting():
    runs = [_run("x", 1, 0.0, 0.7, 0.7), _run("y", 2, 0.0, 0.7, 0.7, **{"split.catsdogs.seed": 5})]
    assert len(group_runs(runs)) == 2


def test_spread_is_the_mean_and_sample_standard_deviation():
    result = spread([0.70, 0.73, 0.68])
    assert result.mean == pytest.approx(0.7033333)
    assert result.std == pytest.approx(math.sqrt(((0.70 - 0.70333) ** 2 + (0.73 - 0.70333) ** 2 + (0.68 - 0.70333) ** 2) / 2), rel=1e-3)
    assert result.n == 3 and str(result) == "0.7033 ± 0.0252"
    assert math.isnan(spread([0.7]).std) and str(spread([0.7])) == "0.7000"


def test_welch_p_is_scipys_unequal_variance_test_and_needs_two_seeds_each():
    a, b = [0.70, 0.73, 0.68], [0.75, 0.67, 0.72, 0.71]
    assert welch_p(a, b) == pytest.approx(ttest_ind(a, b, equal_var=False).pvalue)
    assert welch_p([0.7], b) is None
    assert welch_p([0.7, 0.7], [0.7, 0.7]) is None  # no spread: no answer


def test_a_difference_within_seed_noise_is_not_real():
    groups = group_runs(NOISY)
    best = best_group(groups, "cnn")
    assert best is groups[1]  # by mean validation accuracy: 0.7133 over 0.7000
    result = compare(groups[0], best, "cnn")
    assert result.difference == pytest.approx(0.7033333 - 0.7133333)
    assert result.p > 0.5 and not result.real


def test_a_difference_well_beyond_the_noise_is_real():
    groups = group_runs(CLEAR)
    result = compare(groups[0], best_group(groups, "cnn"), "cnn")
    assert result.difference == pytest.approx(-0.1)
    assert result.p < 0.001 and result.real


def test_the_section_shows_mean_sd_seeds_and_verdicts():
    text = "\n".join(section(NOISY + [_run("lone", 3, 0.25, 0.9, 0.6)], ["cnn"]))
    assert "Welch's t-test" in text and "p < 0.05" in text
    assert "| 2: `b0` +2 | 0.5 | 42, 1, 2 | **0.7133 ± 0.0208** | 0.7133 ± 0.0404 | best |  |  |" in text
    assert "| 1: `base` +2 | 0.0 | 42, 1, 2 | 0.7000 ± 0.0400 | 0.7033 ± 0.0252 | -0.0100 | 0.7" in text
    assert "within noise" in text
    assert "too few seeds" in text  # the lone run with hflip 0.25 has one seed (and the best validation accuracy)


def test_no_section_without_repeated_seeds_and_the_report_includes_it_otherwise():
    single = [_run("x", 1, 0.0, 0.7, 0.7), _run("y", 1, 0.5, 0.8, 0.8)]
    assert section(single, ["cnn"]) == []
    assert "Seeds: signal or noise?" not in markdown(single, ["cnn"], {"cnn": None})
    page = markdown(CLEAR, ["cnn"], {"cnn": None})
    assert "## Seeds: signal or noise?" in page and "**real**" in page
