"""Params of the audit stage, one block per audited dataset (`audit.<name>`): which finders run and their budget.

A dataset without a block is not audited. `near_duplicates` makes the split look for near-duplicates (perceptual
hashes `max_distance` bits apart at most, colour thumbnails correlating at `min_similarity` or more) as well as
identical files; `label_issues` trains `folds` models of
`model` (a model block of the same dataset, for `epochs` each: the named budget) for out-of-sample probabilities,
which cleanlab reads for wrong labels and which also place the outliers. `model` is always named, so that the audit
stage depends on that model's block alone (`models.<model>` in dvc.yaml), not on every model's. `sample` is laid over the block while the
dataset's source is `sample`, as a model block's `sample` is: the embedded sample's smaller budget.
"""

from typing import Any

from pydantic import Field

from pipeline.config.base import Block, Count


class AuditParams(Block):
    """What `audit@<name>` looks for and with what budget (see the module's docstring)."""

    near_duplicates: bool = True
    label_issues: bool = True
    max_distance: int = Field(36, ge=0, le=96)
    min_similarity: float = Field(0.95, ge=-1, le=1)
    model: str
    folds: int = Field(5, ge=2, le=20)
    epochs: Count | None = None
    outlier_fence: float = Field(3.0, gt=0)
    grid: int = Field(16, ge=1, le=64)
    sample: dict[str, Any] = Field(default_factory=dict)

