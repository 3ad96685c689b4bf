"""Matplotlib figures for what a person would rather look at than read."""

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from pipeline.core.atomic import atomic_path  # noqa: E402

# For grids of images: axes made without ticks, which their axis("off") hides anyway, but which matplotlib would
# still lay out for every title and tight_layout (a third of a 36-image grid's time).
NO_TICKS = {"xticks": [], "yticks": []}
HEAT_ALPHA = 0.45
# The heat maps (N, H, W) in [0, 1] of the images at some indices of a grid's array, or None (no map to draw).
Explainer = Callable[[np.ndarray], np.ndarray | None]


def save_png(figure: Figure, path: Path) -> None:
    """Write a figure as PNG atomically and free it."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)


def learning_curves(history: list[dict[str, float]], title: str) -> Figure:
    """Train and validation loss and accuracy per epoch, side by side, and, where logged, how sure the model is
    of the true class on the validation split: loss falls smoothly while accuracy climbs in steps as samples
    cross the decision boundary."""
    confidence = all("val/p_true/q50" in row for row in history)
    panels = 3 if confidence else 2
    figure, axes = plt.subplots(1, panels, figsize=(5 * panels, 4), constrained_layout=True)
    _loss_and_accuracy(axes[:2], {"": history})
    if confidence:
        _confidence(axes[2], history)
    figure.suptitle(title)
    return figure


def compared_curves(histories: dict[str, list[dict[str, float]]], title: str) -> Figure:
    """Loss and accuracy per epoch of one or more runs (by label), side by side; train dashed, validation solid."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    _loss_and_accuracy(axes, histories)
    figure.suptitle(title)
    return figure


def _loss_and_accuracy(axes, histories: dict[str, list[dict[str, float]]]) -> None:
    for run, (label, history) in enumerate(histories.items()):
        epochs = [row["epoch"] for row in history]
        marker = "o" if len(epochs) <= 30 else None
        for axis, metric in zip(axes, ("loss", "acc"), strict=True):
            for split, style in (("train", "--"), ("val", "-")):
                color = f"C{run}" if len(histories) > 1 else ("C0" if split == "train" else "C1")
                values = [row[f"{split}/{metric}"] for row in history]
                name = f"{label} {split}".strip()
                axis.plot(epochs, values, style, marker=marker, markersize=3, color=color, label=name)
    for axis, metric in zip(axes, ("loss", "accuracy"), strict=True):
        _epoch_axis(axis, metric)


def _confidence(axis, history: list[dict[str, float]]) -> None:
    """Validation quantiles of the true-class probability, and the share of samples near the boundary."""
    epochs = [row["epoch"] for row in history]
    quantiles = sorted(key.removeprefix("val/") for key in history[0] if key.startswith("val/p_true/"))
    for quantile in quantiles:
        axis.plot(epochs, [row[f"val/{quantile}"] for row in history], label=f"val {quantile}")
    axis.plot(epochs, [row["val/near_boundary"] for row in history], ":", color="black", label="val near boundary")
    axis.set_ylim(0, 1)
    _epoch_axis(axis, "true-class probability / share")


def _epoch_axis(axis, ylabel: str) -> None:
    axis.set_xlabel("epoch")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_ylabel(ylabel)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)


def augmentation_preview(originals: np.ndarray, augmented: np.ndarray, title: str) -> Figure:
    """One row per training image (uint8 NHWC): the original, then its augmented versions (N, draws, H, W, C)."""
    rows, draws = augmented.shape[:2]
    figure, axes = plt.subplots(
        rows, draws + 1, figsize=(1.6 * (draws + 1), 1.6 * rows + 0.5), squeeze=False, subplot_kw=NO_TICKS
    )
    for row, (original, versions) in enumerate(zip(originals, augmented, strict=True)):
        for column, image in enumerate([original, *versions]):
            _show(axes[row, column], image)
    axes[0, 0].set_title("original", fontsize=9)
    for column in range(1, draws + 1):
        axes[0, column].set_title(f"augmented {column}", fontsize=9)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


def _show(axis, image: np.ndarray) -> None:
    """A uint8 HWC image, gray or RGB, without axes."""
    gray = image.shape[-1] == 1
    axis.imshow(image[..., 0] if gray else image, cmap="gray" if gray else None, vmin=0, vmax=255)
    axis.axis("off")


def misclassified_grid(
    images: np.ndarray,
    actual: np.ndarray,
    predicted: np.ndarray,
    classes: list[str],
    title: str,
    limit: int = 36,
    explain: Explainer | None = None,
) -> Figure:
    """The first `limit` misclassified images (uint8 NHWC), each captioned with its true and predicted class; with
    `explain`, each under its heat map."""
    wrong = np.flatnonzero(actual != predicted)[:limit]
    captions = [f"{classes[actual[index]]}\n-> {classes[predicted[index]]}" for index in wrong]
    figure, axes = image_grid(images, wrong, captions, columns=6, cell=(1.9, 2.1), explain=explain)
    if not len(wrong):
        axes.flat[0].text(0.5, 0.5, "no misclassified images", ha="center", va="center")
    figure.suptitle(f"{title} ({len(np.flatnonzero(actual != predicted))} of {len(actual)}; true -> predicted)")
    figure.tight_layout()
    return figure


@dataclass(frozen=True)
class TopLosses:
    """fastai's top losses: the samples at the indices `shown` (highest loss first), with every sample's actual
    class, class probabilities and loss."""

    actual: np.ndarray
    probabilities: np.ndarray
    losses: np.ndarray
    shown: np.ndarray
    classes: list[str]

    def caption(self, index: int) -> list[str]:
        """`actual / predicted` and `p <probability of the prediction>, loss <loss>` for one sample."""
        predicted = int(self.probabilities[index].argmax())
        return [
            f"{self.classes[self.actual[index]]} / {self.classes[predicted]}",
            f"p {self.probabilities[index, predicted]:.2f}, loss {self.losses[index]:.2f}",
        ]


def top_losses_grid(images: np.ndarray, top: TopLosses, title: str, explain: Explainer | None = None) -> Figure:
    """fastai's plot_top_losses: the images (uint8 NHWC) shown, each titled with its actual and predicted class, the
    probability of the prediction and its loss; with `explain`, each under its heat map."""
    captions = ["\n".join(top.caption(index)) for index in top.shown]
    figure, _ = image_grid(images, top.shown, captions, columns=3, cell=(2.4, 2.6), explain=explain)
    figure.suptitle(f"{title}\nactual / predicted, probability of the prediction, loss", fontsize=10)
    figure.tight_layout()
    return figure


def image_grid(
    images: np.ndarray,
    shown: np.ndarray,
    captions: list[str],
    columns: int,
    cell: tuple[float, float],
    explain: Explainer | None = None,
) -> tuple[Figure, np.ndarray]:
    """The images at the indices `shown`, at most `columns` a row, each `cell` inches, captioned; axes off. With
    `explain`, each image under its heat map (`explain(shown)`; none when it gives None)."""
    columns = max(1, min(columns, len(shown)))
    rows = max(1, math.ceil(len(shown) / columns))
    figure, axes = plt.subplots(
        rows, columns, figsize=(cell[0] * columns, cell[1] * rows + 0.4), squeeze=False, subplot_kw=NO_TICKS
    )
    for axis in axes.flat:
        axis.axis("off")
    maps = explain(shown) if explain is not None and len(shown) else None
    for position, (axis, index, caption) in enumerate(zip(axes.flat, shown, captions, strict=False)):
        _show(axis, images[index])
        if maps is not None:
            heat_overlay(axis, maps[position])
        axis.set_title(caption, fontsize=8)
    return figure, axes


def heat_overlay(axis, heat: np.ndarray) -> None:
    """A [0, 1] heat map (H, W) over the image already shown on `axis`, half transparent (jet: red is hot)."""
    axis.imshow(heat, cmap="jet", alpha=HEAT_ALPHA, vmin=0, vmax=1)


def explained_image(image: np.ndarray, heat: np.ndarray, title: str) -> Figure:
    """One image (uint8 HWC) beside itself under its heat map: what `pipeline predict --explain` writes per image."""
    figure, axes = plt.subplots(1, 2, figsize=(5, 2.8), subplot_kw=NO_TICKS)
    _show(axes[0], image)
    _show(axes[1], image)
    heat_overlay(axes[1], heat)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return figure


def top_losses_table(features: np.ndarray, names: list[str], top: TopLosses, title: str) -> Figure:
    """plot_top_losses for table rows: the rows shown as a table of their actual and predicted class, the
    probability of the prediction, the loss and the features (as stored, before any normalisation)."""
    cells = [[*top.caption(index), *(f"{value:.4g}" for value in features[index])] for index in top.shown]
    figure, axis = plt.subplots(figsize=(1.3 * (len(names) + 2), 0.3 * len(cells) + 1.2), constrained_layout=True)
    axis.axis("off")
    header = ["actual / predicted", "probability, loss", *names]
    axis.table(cellText=cells or [[""] * len(header)], colLabels=header, loc="center", fontsize=8)
    axis.set_title(title, fontsize=10)
    return figure


def reliability_diagram(panels: list[tuple[str, list[dict], float]], title: str) -> Figure:
    """Accuracy against confidence per confidence bin, beside the diagonal of perfect calibration, one panel per
    (label, bins, ECE) side by side (the probabilities before and after calibration); bar width spans the bin, and
    the count of test samples in each bin is printed on it."""
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 5), squeeze=False, constrained_layout=True)
    for axis, (label, bins, ece) in zip(axes[0], panels, strict=True):
        _reliability_panel(axis, bins)
        axis.set_title(f"{label}\nexpected calibration error {ece:.3f}", fontsize=10)
    figure.suptitle(title, fontsize=11)
    return figure


def _reliability_panel(axis: Axes, bins: list[dict]) -> None:
    axis.plot([0, 1], [0, 1], "--", color="gray", label="perfectly calibrated")
    for row in bins:
        width = row["high"] - row["low"]
        axis.bar(row["low"], row["accuracy"], width=width, align="edge", color="C0", edgecolor="white", alpha=0.8)
        axis.plot(row["confidence"], row["accuracy"], "o", color="C3", markersize=4)
        centre = (row["low"] + width / 2, row["accuracy"])
        axis.annotate(str(row["count"]), centre, ha="center", va="bottom", fontsize=7)
    axis.plot([], [], "o", color="C3", label="mean confidence of the bin")
    axis.set(xlim=(0, 1), ylim=(0, 1.05), xlabel="confidence (top probability)", ylabel="accuracy")
    axis.legend(loc="upper left", fontsize=8)
    axis.grid(alpha=0.3)


def misclassified_scatter(
    features: np.ndarray,
    actual: np.ndarray,
    predicted: np.ndarray,
    classes: list[str],
    feature_names: list[str],
    title: str,
) -> Figure:
    """Table rows on the two features that separate the classes best (largest spread of class means against
    the spread within classes), coloured by true class; misclassified rows ringed in red."""
    first, second = _most_separating(features, actual)
    figure, axis = plt.subplots(figsize=(6, 5), constrained_layout=True)
    for label, name in enumerate(classes):
        rows = actual == label
        axis.scatter(features[rows, first], features[rows, second], s=18, color=f"C{label}", label=name)
    wrong = actual != predicted
    ringed = {"s": 90, "facecolors": "none", "edgecolors": "red", "linewidths": 1.5}
    axis.scatter(features[wrong, first], features[wrong, second], **ringed, label="misclassified")
    axis.set(xlabel=feature_names[first], ylabel=feature_names[second])
    axis.set_title(f"{title} ({int(wrong.sum())} of {len(actual)})", fontsize=10)
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
    return figure


def _most_separating(features: np.ndarray, labels: np.ndarray) -> tuple[int, int]:
    """The indices of the two features with the highest ratio of between-class to within-class variance."""
    present = np.unique(labels)
    means = np.stack([features[labels == label].mean(axis=0) for label in present])
    within = np.stack([features[labels == label].var(axis=0) for label in present]).mean(axis=0)
    score = means.var(axis=0) / np.maximum(within, 1e-12)
    first, second = np.argsort(-score, kind="stable")[:2]
    return int(first), int(second)
