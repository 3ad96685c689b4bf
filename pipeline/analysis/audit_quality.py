"""The audit's image-quality findings: cleanvision's image-property checks over the raw images (their own size and
colour, before preprocess squashes them), one row per image and issue (`QUALITY_COLUMNS`, most severe first).

cleanvision gives each image a score per kind, 0 to 1, lower worse, and flags it below the kind's threshold: `dark`
(the 99th percentile of brightness: even the brightest pixels are dim), `light` (one minus the 5th percentile:
even the darkest are near white), `blurry` (edge strength of the grayscale image shrunk to 64 pixels, unless its
histogram is peaked: a flat image is not blurry), `low_information` (a tenth of the entropy in bits: near-constant),
`odd_aspect_ratio` (the short side over the long one) and `odd_size` (the square root of the area against the
dataset's quartiles). Its `blurry` measure is taken with the image's 1-pixel border left out: PIL's edge filter
leaves the border unfiltered, so cleanvision's own measure is mostly the brightness of the border on images of a
few dozen pixels, and flags sharp photos and misses blurred ones (cleanlab/cleanvision#120).
"""

from collections.abc import Callable, Sequence
from io import BytesIO

import numpy as np
import pandas as pd
from cleanvision.issue_managers.image_property import BlurrinessProperty
from cleanvision.issue_managers.image_property_issue_manager import (
    ImagePropertyIssueManager,
)
from PIL import Image, ImageFilter, ImageOps, ImageStat, UnidentifiedImageError

from pipeline.analysis.audit_findings import QUALITY_COLUMNS

QUALITY_ISSUES = ("dark", "light", "blurry", "low_information", "odd_size", "odd_aspect_ratio")
# cleanvision's `color_threshold`: a histogram this peaked (1 - exp(-std / 100) above it) lifts the blurry score, so
# that a flat image is not called blurry. cleanvision's 0.18 also lifts blurred photos, whose histograms narrow (a
# tenth to a third of those planted in tests/helpers/quality.py missed); at 0.4 none is missed over 10 seeds, and
# overexposed and near-constant images are still lifted (a dark photo may be flagged blurry as well as dark).
FLAT_HISTOGRAM = 0.4


class InteriorBlurriness(BlurrinessProperty):
    """cleanvision's blurriness, its edge map's unfiltered 1-pixel border left out."""

    def calculate(self, image: Image.Image) -> dict[str, float | str]:
        """The edge strength of the image shrunk to cleanvision's 64 pixels, and its histogram's spread."""
        ratio = max(image.width, image.height) / self.max_resolution
        if ratio > 1:
            image = image.resize((max(int(image.width // ratio), 1), max(int(image.height // ratio), 1)))
        gray = image.convert("L")
        edges = gray.filter(ImageFilter.FIND_EDGES)
        if min(edges.size) > 2:
            edges = edges.crop((1, 1, edges.width - 1, edges.height - 1))
        return {self.name: float(np.sqrt(ImageStat.Stat(edges).var[0])),
                "blurriness_grayscale_std": float(np.std(gray.histogram()))}


class LoadedImages:
    """The images as cleanvision's `Dataset` reads them: `index`, `len` and each image by its position."""

    def __init__(self, load: Callable[[int], Image.Image | None], count: int) -> None:
        self.index = list(range(count))
        self._load = load

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, position: int) -> Image.Image | None:
        return self._load(position)


def image_quality(
    load: Callable[[int], Image.Image | None], paths: Sequence[str], splits: Sequence[str],
    thresholds: dict[str, dict[str, float]],
) -> pd.DataFrame:
    """The flagged (image, issue) rows of the images `load(i)` gives for `paths[i]` (None: undecodable, skipped),
    with cleanvision's score, most severe first; `thresholds`: each kind's `find_issues` parameters."""
    if not paths:
        return pd.DataFrame(columns=QUALITY_COLUMNS)
    manager = ImagePropertyIssueManager()
    manager.image_properties["blurry"] = InteriorBlurriness()
    params = {kind: thresholds.get(kind, {}) for kind in QUALITY_ISSUES}
    params["blurry"] = {"color_threshold": FLAT_HISTOGRAM, **params["blurry"]}
    manager.find_issues(params=params,
                        dataset=LoadedImages(load, len(paths)), imagelab_info={"statistics": {}}, n_jobs=1,
                        verbose=False)
    rows = [
        (paths[position], kind, round(float(manager.issues.at[position, f"{kind}_score"]), 4), splits[position])
        for kind in QUALITY_ISSUES
        for position in np.flatnonzero(manager.issues[f"is_{kind}_issue"].to_numpy(bool))
    ]
    table = pd.DataFrame(rows, columns=QUALITY_COLUMNS)
    return table.sort_values(["score", "path", "issue"], kind="stable").reset_index(drop=True)


def opened(data: bytes) -> Image.Image | None:
    """Encoded image bytes as a PIL image (gray or RGB), upright as its EXIF says; None if PIL cannot read them."""
    try:
        with Image.open(BytesIO(data)) as image:
            return ImageOps.exif_transpose(image).convert(image.mode if image.mode in ("L", "RGB") else "RGB")
    except (UnidentifiedImageError, OSError, ValueError):
        return None
