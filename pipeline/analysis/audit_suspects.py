"""The audit's findings read back as one list, for the browser's review (`pipeline.serving.review`): label issues,
outliers, image-quality issues (`image_quality.csv`, where the audit wrote one) and near-duplicate pairs, each file
most suspect first. Every finding names its images, each with the class it is filed under (from the raw
`samples.csv`) and its split, so that a review can filter by class whatever the kind."""

from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths
from pipeline.data.raw import read_samples

KINDS = ("label_issues", "outliers", "image_quality", "near_duplicates")  # in the order a review shows them
OPTIONAL = ("image_quality",)  # kinds an audit may not have written
COLUMNS = {
    "label_issues": ["path", "given", "suggested", "score", "split"],
    "outliers": ["path", "score", "split"],
    "image_quality": ["path", "issue", "score", "split"],
    "near_duplicates": ["path_a", "path_b", "distance", "splits"],
}


@dataclass(frozen=True)
class Shown:
    """One image of a finding: its path in the raw archive, the class it is filed under, its split."""

    path: str
    given: str
    split: str


@dataclass(frozen=True)
class Suspect:
    """One finding: its `kind`, its images (two for a near-duplicate pair), its `score` (a pair's: its distance, 1 minus
    the aligned similarity in thousandths), the class a label issue suggests and the image-quality `issue` (dark, blurry, ...)."""

    kind: str
    images: tuple[Shown, ...]
    score: float
    suggested: str | None = None
    issue: str | None = None

    def as_json(self) -> dict:
        """The finding as the review page reads it."""
        return asdict(self)


def read_suspects(paths: Paths, dataset: str) -> list[Suspect]:
    """Every finding of the dataset's audit, kind by kind (`KINDS`); an error that says to run the audit when it
    has not written its findings."""
    folder = paths.audit_dir(dataset)
    missing = [kind for kind in KINDS if kind not in OPTIONAL and not (folder / f"{kind}.csv").is_file()]
    if missing:
        raise PipelineError(f"{folder}: no {', '.join(missing)}.csv; run `dvc repro audit@{dataset}` first")
    samples = read_samples(paths, dataset)
    classes = dict(zip(samples["path"], samples["class"], strict=True))
    tables = {kind: _table(folder / f"{kind}.csv", COLUMNS[kind], dataset) for kind in KINDS}
    return [
        *(Suspect("label_issues", (Shown(r.path, r.given, r.split),), float(r.score), suggested=r.suggested)
          for r in tables["label_issues"].itertuples()),
        *(Suspect("outliers", (Shown(r.path, classes.get(r.path, ""), r.split),), float(r.score))
          for r in tables["outliers"].itertuples()),
        *(Suspect("image_quality", (Shown(r.path, classes.get(r.path, ""), r.split),), float(r.score), issue=r.issue)
          for r in tables["image_quality"].itertuples()),
        *(_pair(r.path_a, r.path_b, r.splits, float(r.distance), classes) for r in tables["near_duplicates"].itertuples()),
    ]


def _pair(path_a: str, path_b: str, splits: str, distance: float, classes: dict[str, str]) -> Suspect:
    """A near-duplicate pair; `splits` is `train/test` (a's split, then b's)."""
    split_a, _, split_b = splits.partition("/")
    images = (Shown(path_a, classes.get(path_a, ""), split_a), Shown(path_b, classes.get(path_b, ""), split_b or split_a))
    return Suspect("near_duplicates", images, distance)


def _table(file: Path, columns: list[str], dataset: str) -> pd.DataFrame:
    """A findings CSV as text (an empty table where an optional kind's file is absent); an error naming the file
    when it lacks a column."""
    if not file.is_file():
        return pd.DataFrame(columns=columns)
    table = pd.read_csv(file, dtype=str, keep_default_na=False)
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise PipelineError(
            f"{file}: no {', '.join(missing)} column (expected {','.join(columns)}); run `dvc repro audit@{dataset}` "
            "again"
        )
    return table
