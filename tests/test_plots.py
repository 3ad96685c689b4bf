"""The figures: the panels they draw for the data they get."""

import numpy as np

from pipeline.analysis.plots import (
    compared_curves,
    learning_curves,
    misclassified_scatter,
    reliability_diagram,
)

ROW = {"epoch": 1, "train/loss": 0.7, "val/loss": 0.69, "train/acc": 0.5, "val/acc": 0.55}
CONFIDENCE = {"val/p_true/q10": 0.3, "val/p_true/q50": 0.5, "val/p_true/q90": 0.7, "val/near_boundary": 0.4}


def test_learning_curves_add_a_confidence_panel_when_it_was_logged():
    assert len(learning_curves([ROW, {**ROW, "epoch": 2}], "t").axes) == 2
    with_confidence = learning_curves([{**ROW, **CONFIDENCE}], "t")
    assert len(with_confidence.axes) == 3
    labels = [line.get_label() for line in with_confidence.axes[2].get_lines()]
    assert labels == ["val p_true/q10", "val p_true/q50", "val p_true/q90", "val near boundary"]


def test_compared_curves_draw_train_and_val_of_every_run():
    figure = compared_curves({"a": [ROW], "b": [ROW]}, "t")
    assert [line.get_label() for line in figure.axes[0].get_lines()] == ["a train", "a val", "b train", "b val"]


def test_reliability_diagram_has_a_panel_per_set_of_probabilities_a_bar_per_bin_and_the_ece_in_its_title():
    bins = [{"low": 0.5, "high": 0.6, "confidence": 0.55, "accuracy": 0.4, "count": 3}]
    figure = reliability_diagram([("before", bins, 0.15), ("after", bins * 2, 0.02)], "model")
    assert [len(axis.patches) for axis in figure.axes] == [1, 2]
    assert "before\nexpected calibration error 0.150" in figure.axes[0].get_title()
    assert "expected calibration error 0.020" in figure.axes[1].get_title()


def test_misclassified_scatter_uses_the_two_most_separating_features():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 20)
    noise = rng.normal(size=(4, 40))
    features = np.column_stack([noise[0], labels * 5 + noise[1] * 0.1, noise[2], labels * 3 + noise[3] * 0.1])
    figure = misclassified_scatter(features, labels, labels, ["a", "b"], ["f0", "f1", "f2", "f3"], "t")
    axis = figure.axes[0]
    assert (axis.get_xlabel(), axis.get_ylabel()) == ("f1", "f3")
    assert "(0 of 40)" in axis.get_title()
