"""Classification metrics of a model's predictions: per-class precision, recall, F1 and support, and their macro
averages, computed with scikit-learn."""

import numpy as np
from sklearn.metrics import precision_recall_fscore_support


def classification_metrics(actual: np.ndarray, predicted: np.ndarray, classes: list[str]) -> tuple[dict, dict]:
    """Per-class precision, recall, F1 and support by class name, and the macro averages of the first three.

    Every class of `classes` is scored, present in `actual` or not. A figure that is undefined (a class never
    predicted, or absent from `actual`) is 0, never NaN, and counts as 0 in the macro average.
    """
    precision, recall, f1, support = precision_recall_fscore_support(
        actual, predicted, labels=range(len(classes)), zero_division=0
    )
    per_class = {
        name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, p, r, f, s in zip(classes, precision, recall, f1, support, strict=True)
    }
    macro = {"precision": float(np.mean(precision)), "recall": float(np.mean(recall)), "f1": float(np.mean(f1))}
    return per_class, macro
