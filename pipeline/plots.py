"""Matplotlib figures for what a person would rather look at than read."""

import math
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from pipeline.atomic import atomic_path  # noqa: E402


def save_png(figure: Figure, path: Path) -> None:
    """Write a figure as PNG atomically and free it."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)


def learning_curves(history: list[dict[str, float]], title: str) -> Figure:
    """Train and validation loss and accuracy per epoch, side by side."""
    return compared_curves({"": history}, title)


def compared_curves(histories: dict[str, list[dict[str, float]]], title: str) -> Figure:
    """Loss and accuracy per epoch of one or more runs (by label), side by side; train dashed, validation solid."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for color, (label, history) in enumerate(histories.items()):
        epochs = [row["epoch"] for row in history]
        for axis, metric in zip(axes, ("loss", "acc"), strict=True):
            for split, style in (("train", "--"), ("val", "-")):
                values = [row[f"{split}/{metric}"] for row in history]
                name = f"{label} {split}".strip()
                axis.plot(epochs, values, style, marker="o", markersize=3, color=f"C{color}", label=name)
    for axis, metric in zip(axes, ("loss", "accuracy"), strict=True):
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(title)
    return figure


def augmentation_preview(originals: np.ndarray, augmented: np.ndarray, title: str) -> Figure:
    """One row per training image (uint8 NHWC): the original, then its augmented versions (N, draws, H, W, C)."""
    rows, draws = augmented.shape[:2]
    figure, axes = plt.subplots(rows, draws + 1, figsize=(1.6 * (draws + 1), 1.6 * rows + 0.5), squeeze=False)
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
) -> Figure:
    """The first `limit` misclassified images (uint8 NHWC), each captioned with its true and predicted class."""
    wrong = np.flatnonzero(actual != predicted)[:limit]
    columns = max(1, min(6, len(wrong)))
    rows = max(1, math.ceil(len(wrong) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(1.9 * columns, 2.1 * rows + 0.4), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, index in zip(axes.flat, wrong, strict=False):
        _show(axis, images[index])
        axis.set_title(f"{classes[actual[index]]}\n-> {classes[predicted[index]]}", fontsize=8)
    if not len(wrong):
        axes.flat[0].text(0.5, 0.5, "no misclassified images", ha="center", va="center")
    figure.suptitle(f"{title} ({len(np.flatnonzero(actual != predicted))} of {len(actual)}; true -> predicted)")
    figure.tight_layout()
    return figure
