"""The audit's image grids, DVC plots: the top label suspects with their given and suggested class, and the
near-duplicate pairs side by side."""

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


def _titled(figure: Figure, title: str) -> Figure:
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure
