"""Params of the audit stage, one block per audited dataset (`audit.<name>`): which finders run and their budget.

A dataset without a block is not audited. `near_duplicates` makes the split look for near-duplicates as well as
identical files (`pipeline.data.near_duplicates`: each image's `neighbours` closest by a mirror-invariant descriptor
are checked, and kept when their colour thumbnails, once aligned, correlate at `min_similarity` or more;
`max_distance`, the bits of the perceptual hashes it replaced, is refused with the new key's name);
`label_issues` trains `folds` models of `model` (a model block of the same dataset, for `epochs` each: the named
budget) for out-of-sample probabilities, which cleanlab reads for wrong labels and which also place the outliers.
`model` is always named, so that the audit stage depends on that model's block alone (`models.<model>` in
dvc.yaml), not on every model's. `sample` is laid over the block while the dataset's source is `sample`, as a model
block's `sample` is: the embedded sample's smaller budget.

`image_quality` runs cleanvision's checks over the raw images (`pipeline.analysis.audit_quality`): an image is
flagged when its cleanvision score (0 to 1, lower: worse) is below the kind's threshold: `dark_threshold` (the
99th percentile of brightness), `light_threshold` (one minus the 5th percentile), `blurry_threshold` (edge
strength, the image's own 1-pixel border left out), `low_information_threshold` (a tenth of the entropy in bits),
`odd_aspect_ratio_threshold` (the short side over the long one); `odd_size_iqr_factor` places the fence on the
square root of the area (quartiles plus or minus this many interquartile ranges). Cleanvision's defaults but for
`blurry_threshold` (its 0.29 flags a third of sharp photos of 64 to 128 pixels; docs/how-to/audit.md has the
measurements). `imbalance_warning`: the stage warns of a class whose share of the images is below this fraction of
an even share (cleanlab Datalab's `class_imbalance` rule and default).
"""

from typing import Any

from pydantic import Field

from pipeline.config.base import Block, Count


class AuditParams(Block):
    """What `audit@<name>` looks for and with what budget (see the module's docstring)."""

    renamed = {"max_distance": "neighbours"}
    near_duplicates: bool = True
    label_issues: bool = True
    neighbours: int = Field(3, ge=1, le=50)
    min_similarity: float = Field(0.9, ge=-1, le=1)
    model: str
    folds: int = Field(5, ge=2, le=20)
    epochs: Count | None = None
    outlier_fence: float = Field(3.0, gt=0)
    grid: int = Field(16, ge=1, le=64)
    image_quality: bool = True
    dark_threshold: float = Field(0.32, gt=0, lt=1)
    light_threshold: float = Field(0.05, gt=0, lt=1)
    blurry_threshold: float = Field(0.09, gt=0, lt=1)
    low_information_threshold: float = Field(0.3, gt=0, lt=1)
    odd_aspect_ratio_threshold: float = Field(0.35, gt=0, lt=1)
    odd_size_iqr_factor: float = Field(3.0, gt=0)
    imbalance_warning: float = Field(0.1, gt=0, lt=1)
    sample: dict[str, Any] = Field(default_factory=dict)

    def quality_thresholds(self) -> dict[str, dict[str, float]]:
        """Cleanvision's `find_issues` parameters for each image-quality kind, from this block's keys."""
        return {
            "dark": {"threshold": self.dark_threshold},
            "light": {"threshold": self.light_threshold},
            "blurry": {"threshold": self.blurry_threshold},
            "low_information": {"threshold": self.low_information_threshold},
            "odd_aspect_ratio": {"threshold": self.odd_aspect_ratio_threshold},
            "odd_size": {"iqr_factor": self.odd_size_iqr_factor},
        }

