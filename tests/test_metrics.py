import json
import math

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix

from pipeline.analysis.metrics import classification_metrics


def test_classification_metrics_match_hand_computed_values():
    actual = np.array([0, 0, 1, 1, 2])
    predicted = np.array([0, 1, 1, 1, 0])
    per_class, macro = classification_metrics(actual, predicted, ["a", "b", "c"])
    assert per_class["a"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert per_class["b"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert macro == pytest.approx({"precision": (0.5 + 2 / 3) / 3, "recall": 0.5, "f1": 1.3 / 3})


def test_a_class_never_predicted_scores_zero_not_nan():
    per_class, macro = classification_metrics(np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 0]), ["a", "b", "c"])
    assert per_class["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert not any(math.isnan(value) for value in macro.values())
    json.dumps([per_class, macro], allow_nan=False)


def test_a_class_absent_from_the_test_set_has_zero_support():
    per_class, _ = classification_metrics(np.array([0, 1]), np.array([0, 1]), ["a", "b", "c"])
    assert per_class["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert per_class["a"]["f1"] == 1.0


@pytest.mark.parametrize("classes", [2, 10])
def test_per_class_figures_follow_from_the_confusion_matrix_counts(classes):
    rng = np.random.default_rng(classes)
    actual, predicted = rng.integers(0, classes, 2000), rng.integers(0, classes, 2000)
    names = [f"class{n}" for n in range(classes)]
    counts = confusion_matrix(actual, predicted, labels=range(classes))
    per_class, macro = classification_metrics(actual, predicted, names)
    for index, name in enumerate(names):
        hits, predicted_as, support = counts[index, index], counts[:, index].sum(), counts[index].sum()
        precision, recall = hits / predicted_as, hits / support
        expected = {"precision": precision, "recall": recall, "f1": 2 * precision * recall / (precision + recall)}
        assert per_class[name] == pytest.approx({**expected, "support": support})
    assert macro["f1"] == pytest.approx(np.mean([figures["f1"] for figures in per_class.values()]))
