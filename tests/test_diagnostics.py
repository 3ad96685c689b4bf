"""The diagnostic figures on hand-built predictions, computed by hand."""

import numpy as np
import pytest

from pipeline.analysis.diagnostics import (
    boundary_distance,
    confidence_figures,
    expected_calibration_error,
    mode_gap,
    reliability_bins,
    true_class_probability,
)

# Four samples of three classes; true classes 0, 1, 2, 0.
PROBABILITIES = np.array([[0.7, 0.2, 0.1], [0.45, 0.5, 0.05], [0.3, 0.3, 0.4], [0.1, 0.6, 0.3]])
LABELS = np.array([0, 1, 2, 0])


def test_true_class_probability_picks_each_samples_class():
    assert true_class_probability(PROBABILITIES, LABELS).tolist() == [0.7, 0.5, 0.4, 0.1]


def test_boundary_distance_is_half_the_gap_to_the_strongest_other_class():
    assert boundary_distance(PROBABILITIES, LABELS) == pytest.approx([0.25, 0.025, 0.05, -0.25])


def test_for_two_classes_the_boundary_distance_is_p_minus_one_half():
    probabilities = np.array([[0.2, 0.8], [0.55, 0.45], [0.9, 0.1]])
    assert boundary_distance(probabilities, np.array([1, 1, 1])) == pytest.approx([0.3, -0.05, -0.4])


def test_confidence_figures_are_quantiles_and_the_share_near_the_boundary():
    figures = confidence_figures(PROBABILITIES, LABELS)
    assert set(figures) == {"p_true/q10", "p_true/q50", "p_true/q90", "near_boundary"}
    assert figures["p_true/q50"] == pytest.approx(0.45)  # median of 0.1, 0.4, 0.5, 0.7
    assert figures["p_true/q10"] == pytest.approx(0.1 + 0.3 * 0.3)  # numpy's linear interpolation
    assert figures["p_true/q90"] == pytest.approx(0.5 + 0.7 * 0.2)
    assert figures["near_boundary"] == 0.5  # samples 2 and 3 lie within 0.1


def test_no_samples_give_no_figures():
    assert confidence_figures(np.zeros((0, 3)), np.zeros(0, np.int64)) == {}


def test_reliability_bins_group_by_top_probability():
    bins = reliability_bins(PROBABILITIES, LABELS, bins=10)
    assert [(row["low"], row["count"]) for row in bins] == [(0.4, 1), (0.5, 1), (0.6, 1), (0.7, 1)]
    assert [row["accuracy"] for row in bins] == [1.0, 1.0, 0.0, 1.0]
    assert [row["confidence"] for row in bins] == pytest.approx([0.4, 0.5, 0.6, 0.7])


def test_ece_is_the_weighted_gap_between_confidence_and_accuracy():
    expected = (abs(1 - 0.4) + abs(1 - 0.5) + abs(0 - 0.6) + abs(1 - 0.7)) / 4
    assert expected_calibration_error(PROBABILITIES, LABELS, bins=10) == pytest.approx(expected)


def test_a_perfectly_calibrated_model_has_zero_ece():
    probabilities = np.array([[0.75, 0.25]] * 4)
    assert expected_calibration_error(probabilities, np.array([0, 0, 0, 1])) == pytest.approx(0)


def test_a_top_probability_of_one_falls_in_the_last_bin():
    (row,) = reliability_bins(np.array([[1.0, 0.0]]), np.array([0]), bins=15)
    assert (row["low"], row["high"]) == (14 / 15, 1.0)


def ece_by_hand(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE written out: for each of `bins` equal-width confidence bins over [0, 1] (the last one closed), the gap
    between the bin's accuracy and mean confidence, weighted by its share of the samples."""
    total = 0.0
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        members = [
            i for i, row in enumerate(probabilities) if low <= row.max() < high or (b == bins - 1 and row.max() == high)
        ]
        if members:
            accuracy = sum(probabilities[i].argmax() == labels[i] for i in members) / len(members)
            confidence = sum(probabilities[i].max() for i in members) / len(members)
            total += abs(accuracy - confidence) * len(members) / len(labels)
    return total


@pytest.mark.parametrize("classes", [2, 10])
def test_ece_matches_a_computation_bin_by_bin_on_random_probabilities(classes):
    rng = np.random.default_rng(classes)
    probabilities = rng.dirichlet(np.full(classes, 0.5), size=2000)
    # Right about 60% of the time plus chance: confidence and accuracy disagree, but not everywhere alike.
    labels = np.where(rng.random(2000) < 0.6, probabilities.argmax(axis=1), rng.integers(0, classes, 2000))
    expected = ece_by_hand(probabilities, labels)
    assert expected > 0.01
    assert expected_calibration_error(probabilities, labels) == pytest.approx(expected, rel=1e-9)


def test_mode_gap_reports_both_modes_and_flags_a_large_accuracy_gap():
    gap = mode_gap({"acc": 0.95, "loss": 0.1}, {"acc": 0.5, "loss": 2.0})
    assert gap["acc_gap"] == pytest.approx(0.45)
    assert gap["loss_gap"] == pytest.approx(1.9)
    assert gap["large"] is True
    assert mode_gap({"acc": 0.9, "loss": 0.3}, {"acc": 0.88, "loss": 0.32})["large"] is False
