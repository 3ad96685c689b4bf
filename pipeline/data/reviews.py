"""Reviewed audit findings, the files `split.<name>.exclude` and `split.<name>.relabel` name: the images to leave
out (a CSV with a `path` column) and the labels to correct (`path,label`, the label a class name). They are files
in git under `reviews/`, so a cleaned dataset is a params edit plus a reviewed file, and `dvc exp run` compares it
with the raw one. Both apply after the draw: every other image stays in the split it was drawn into, so the clean
and raw runs differ by the reviewed images alone.
"""

from pathlib import Path

import pandas as pd

from pipeline.core.errors import PipelineError


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
