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
    epochs = [row["epoch"] for row in history]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for axis, metric in zip(axes, ("loss", "acc"), strict=True):
        for split in ("train", "val"):
            axis.plot(epochs, [row[f"{split}/{metric}"] for row in history], marker="o", label=split)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_ylabel("accuracy" if metric == "acc" else "loss")
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    return figure


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
        image = images[index]
        gray = image.shape[-1] == 1
        axis.imshow(image[..., 0] if gray else image, cmap="gray" if gray else None, vmin=0, vmax=255)
        axis.set_title(f"{classes[actual[index]]}\n-> {classes[predicted[index]]}", fontsize=8)
    if not len(wrong):
        axes.flat[0].text(0.5, 0.5, "no misclassified images", ha="center", va="center")
    figure.suptitle(f"{title} ({len(np.flatnonzero(actual != predicted))} of {len(actual)}; true -> predicted)")
    figure.tight_layout()
    return figure
