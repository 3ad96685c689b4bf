"""The audit's image grids, DVC plots: the top label suspects with their given and suggested class, the
near-duplicate pairs side by side, and the worst images of each image-quality issue, a row each."""

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from pipeline.analysis.plots import image_grid


def suspects_grid(images: np.ndarray, suspects: pd.DataFrame, title: str) -> Figure:
    """The suspects' images (uint8 NHWC, in the table's order), each titled `given -> suggested` and its score."""
    captions = [f"{row.given} -> {row.suggested}\n{row.score:.2f}" for row in suspects.itertuples()]
    return _titled(image_grid(images, np.arange(len(images)), captions, columns=4, cell=(2.2, 2.4))[0], title)


def pairs_grid(images: np.ndarray, pairs: pd.DataFrame, title: str) -> Figure:
    """Each pair's two images side by side (uint8 NHWC, a then b for each row of the table), with its splits and
    distance."""
    captions = [text for row in pairs.itertuples() for text in (f"{row.splits} d={row.distance}", "")]
    return _titled(image_grid(images, np.arange(len(images)), captions, columns=4, cell=(2.2, 2.4))[0], title)


def quality_grid(images: np.ndarray, worst: pd.DataFrame, title: str, per_row: int) -> Figure:
    """The images of each issue on a row of their own (uint8 NHWC, in the table's order, at most `per_row` an
    issue), each titled with its issue and cleanvision score (lower: worse); empty cells where an issue has fewer."""
    cells, captions = [], []
    blank = np.zeros_like(images[0])
    for _, rows in worst.groupby("issue", sort=False):
        cells += [images[position] for position in rows.index] + [blank] * (per_row - len(rows))
        captions += [f"{row.issue}\n{row.score:.2f}" for row in rows.itertuples()] + [""] * (per_row - len(rows))
    shown = [index for index, caption in enumerate(captions) if caption]
    figure, axes = image_grid(np.stack(cells), np.arange(len(cells)), captions, columns=per_row, cell=(2.2, 2.4))
    for index, axis in enumerate(axes.flat):
        if index not in shown:
            axis.set_visible(False)
    return _titled(figure, title)


def _titled(figure: Figure, title: str) -> Figure:
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure
