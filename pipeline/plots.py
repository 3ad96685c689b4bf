"""Matplotlib figures for what a person would rather look at than read."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


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
