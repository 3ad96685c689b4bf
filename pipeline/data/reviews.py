"""Reviewed audit findings, the files `split.<name>.exclude` and `split.<name>.relabel` name: the images to leave
out (a CSV with a `path` column) and the labels to correct (`path,label`, the label a class name). They are files
in git under `reviews/`, so a cleaned dataset is a params edit plus a reviewed file, and `dvc exp run` compares it
with the raw one. Both apply after the draw: every other image stays in the split it was drawn into, so the clean
and raw runs differ by the reviewed images alone.

Both reviews, the terminal's and the browser's, record decisions through `record`: one decision per image (keep,
exclude, or relabel to a class), merged into what the files hold and written at once, each file atomically. A kept
image goes into `kept.csv` beside the exclude file, which split does not read: it only tells a review that the image
was looked at.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from pipeline.config.datasets import REVIEWS, SplitParams
from pipeline.core.atomic import write_text
from pipeline.core.errors import PipelineError

Action = Literal["keep", "exclude", "relabel"]
ACTIONS: tuple[Action, ...] = ("keep", "exclude", "relabel")


@dataclass(frozen=True)
class Decision:
    """What a review decided for one image: keep it, exclude it, or relabel it to the class `label`."""

    action: Action
    label: str | None = None


@dataclass(frozen=True)
class ReviewFiles:
    """Where a dataset's decisions are written: split's exclude and relabel files, and the kept images beside them.
    `dataset` is the one whose `split` params name them, for errors that name the key."""

    exclude: Path
    relabel: Path
    kept: Path
    dataset: str

    def key(self, action: Action) -> str:
        """The params key (or, for kept images, the file) an error about `action`'s file names."""
        return str(self.kept) if action == "keep" else f"split.{self.dataset}.{action}"


def review_files(dataset: str, split: SplitParams, root: Path = Path(".")) -> ReviewFiles:
    """The files `split.<dataset>.exclude` and `relabel` name, under `root` (default: reviews/<dataset>/exclude.csv,
    relabel.csv), and kept.csv beside the exclude file."""
    exclude = root / (split.exclude or f"{REVIEWS}/{dataset}/exclude.csv")
    relabel = root / (split.relabel or f"{REVIEWS}/{dataset}/relabel.csv")
    return ReviewFiles(exclude, relabel, exclude.parent / "kept.csv", dataset)


def read_decisions(files: ReviewFiles) -> dict[str, Decision]:
    """Each reviewed image's decision, as the files hold it (an image in two files: exclude wins, then relabel)."""
    decisions: dict[str, Decision] = {}
    for path in _listed(files, "keep")["path"]:
        decisions[path] = Decision("keep")
    relabelled = _listed(files, "relabel")
    for path, label in zip(relabelled["path"], relabelled["label"], strict=True):
        decisions[path] = Decision("relabel", label)
    for path in _listed(files, "exclude")["path"]:
        decisions[path] = Decision("exclude")
    return decisions


def record(files: ReviewFiles, changes: dict[str, Decision | None]) -> dict[str, Decision]:
    """Merge `changes` (a path's new decision; None: undecided again) into the files' decisions and write each file
    atomically; returns every decision."""
    decisions = {**read_decisions(files), **changes}
    decided = {path: decision for path, decision in decisions.items() if decision is not None}
    tables = {
        "exclude": pd.DataFrame({"path": [p for p, d in decided.items() if d.action == "exclude"]}),
        "relabel": pd.DataFrame(
            [(p, d.label) for p, d in decided.items() if d.action == "relabel"], columns=["path", "label"]
        ),
        "keep": pd.DataFrame({"path": [p for p, d in decided.items() if d.action == "keep"]}),
    }
    for action, table in tables.items():
        file = _file(files, action)
        file.parent.mkdir(parents=True, exist_ok=True)
        write_text(file, table.to_csv(index=False, lineterminator="\n"))
    return decided


def _file(files: ReviewFiles, action: Action) -> Path:
    return {"keep": files.kept, "exclude": files.exclude, "relabel": files.relabel}[action]


def _listed(files: ReviewFiles, action: Action) -> pd.DataFrame:
    """The rows of `action`'s file (none while it does not exist)."""
    columns = ["path", "label"] if action == "relabel" else ["path"]
    file = _file(files, action)
    return _read(str(file), columns, files.key(action)) if file.is_file() else pd.DataFrame(columns=columns)


def read_exclusions(file: str | None, key: str) -> set[str]:
    """The paths `file` lists (none when it is None); errors name the params key."""
    if file is None:
        return set()
    return set(_read(file, ["path"], key)["path"])


def read_relabels(file: str | None, classes: tuple[str, ...], key: str) -> dict[str, str]:
    """Path to corrected class, from `file` (none when it is None); a label that is not a class is an error."""
    if file is None:
        return {}
    table = _read(file, ["path", "label"], key)
    unknown = sorted(set(table["label"]) - set(classes))
    if unknown:
        raise PipelineError(f"{key}: {file} relabels to {', '.join(unknown)}, not classes ({', '.join(classes)})")
    return dict(zip(table["path"], table["label"], strict=True))


def apply_reviews(frame: pd.DataFrame, excluded: set[str], relabelled: dict[str, str]) -> pd.DataFrame:
    """One split's rows without the excluded paths and with the corrected classes."""
    kept = frame[~frame["path"].isin(excluded)]
    corrected = [relabelled.get(path, cls) for path, cls in zip(kept["path"], kept["class"], strict=True)]
    return kept.assign(**{"class": corrected})


def _read(file: str, columns: list[str], key: str) -> pd.DataFrame:
    path = Path(file)
    if not path.is_file():
        raise PipelineError(f"{key}: {file} not found (`pipeline audit review` writes it)")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise PipelineError(f"{key}: {file} has no {', '.join(missing)} column (expected {','.join(columns)})")
    return table
