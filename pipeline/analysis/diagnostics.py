"""Figures that explain training: how sure the model is of the true class, calibration, BatchNorm's mode gap.

Accuracy only changes when a sample's prediction crosses the decision boundary, while the loss moves with every
bit of probability. The quantiles of the probability given to the true class, and the share of samples close to
the boundary, show both at once. Calibration compares how sure the model says it is with how often it is right.
"""

import numpy as np

QUANTILES = (0.1, 0.5, 0.9)
NEAR_BOUNDARY = 0.1
CALIBRATION_BINS = 15
LARGE_MODE_GAP = 0.1


def true_class_probability(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The probability (N,) each sample's true class gets, from class probabilities (N, classes)."""
    return probabilities[np.arange(len(labels)), labels]


def sample_losses(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each sample's loss (N,), the negative log of its true class's probability: cross-entropy, or binary
    cross-entropy for two classes. A probability of 0 (float underflow) counts as the smallest positive float."""
    p_true = true_class_probability(probabilities, labels)
    return -np.log(np.maximum(p_true, np.finfo(p_true.dtype).tiny))


def boundary_distance(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Half the gap between the true class's probability and the strongest other class's: positive when the
    prediction is right, 0 on the decision boundary. For two classes it is p(true) - 0.5."""
    others = probabilities.copy()
    others[np.arange(len(labels)), labels] = -np.inf
    return (true_class_probability(probabilities, labels) - others.max(axis=1)) / 2


def confidence_figures(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Quantiles of the true-class probability (`p_true/q10`, ...) and the share of samples within
    NEAR_BOUNDARY of the decision boundary (`near_boundary`)."""
    if not len(labels):
        return {}
    p_true = true_class_probability(probabilities, labels)
    figures = {f"p_true/q{round(q * 100):02d}": float(np.quantile(p_true, q)) for q in QUANTILES}
    figures["near_boundary"] = float(np.mean(np.abs(boundary_distance(probabilities, labels)) < NEAR_BOUNDARY))
    return figures


def reliability_bins(probabilities: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS) -> list[dict]:
    """The predictions grouped by confidence (the top probability) into equal-width bins over [0, 1]: each
    non-empty bin's mean confidence, accuracy and sample count, low to high."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    index = np.minimum((confidence * bins).astype(int), bins - 1)
    rows = []
    for b in np.unique(index):
        members = index == b
        rows.append({
            "low": b / bins,
            "high": (b + 1) / bins,
            "confidence": float(confidence[members].mean()),
            "accuracy": float(correct[members].mean()),
            "count": int(members.sum()),
        })
    return rows


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """ECE: the sample-weighted mean gap between confidence and accuracy over the reliability bins."""
    rows = reliability_bins(probabilities, labels, bins)
    total = sum(row["count"] for row in rows)
    return float(sum(row["count"] * abs(row["accuracy"] - row["confidence"]) for row in rows) / max(total, 1))


def mode_gap(train_mode: dict[str, float], eval_mode: dict[str, float]) -> dict[str, float | bool]:
    """The training split scored in train mode (the last epoch, batch statistics) beside eval mode (running
    statistics), and the gap: accuracy lost and loss gained in eval mode. `large` flags an accuracy gap above
    LARGE_MODE_GAP, the sign that BatchNorm's running statistics do not match the batches the model learned on."""
    accuracy_gap = train_mode["acc"] - eval_mode["acc"]
    return {
        "train_mode_acc": train_mode["acc"],
        "eval_mode_acc": eval_mode["acc"],
        "acc_gap": accuracy_gap,
        "train_mode_loss": train_mode["loss"],
        "eval_mode_loss": eval_mode["loss"],
        "loss_gap": eval_mode["loss"] - train_mode["loss"],
        "large": bool(accuracy_gap > LARGE_MODE_GAP),
    }
