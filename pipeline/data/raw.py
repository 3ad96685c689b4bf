"""The raw layout every source ends in, `data/raw/<dataset>/`: the samples themselves, `samples.csv` and
`index.json`. Split and preprocess read only this, whatever the source was, so every dataset takes one code path;
`pipeline.data.ingest` writes it for image sources, `pipeline.data.tables` for tables.

- the samples: `images.zip`, each image with the bytes its source had, named by its path in the source's tree
  (uncompressed, fixed timestamps: equal sources give equal bytes; one archive, not 100,000 loose files, keeps DVC
  fast); for a table, `table.csv` (see `pipeline.data.tables`).
- `samples.csv`: one row per sample, `path`, `class`, `part`, `sha256`, in a stable order: part, class, then path
  in natural order (`cat.2.jpg` before `cat.10.jpg`). `part` is `train`, `val` or `test` where the source brings its
  own parts (split folders, CIFAR-10's official test set), empty for one pool. `sha256`, the content's hash, is
  what the split's leakage check compares (empty for table rows).
- `index.json`: the kind (`images` or `table`), the classes in label order, the layout read, the sample count and
  the files left out, by reason.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from pipeline.core.atomic import write_json
from pipeline.core.errors import PipelineError
from pipeline.core.paths import RAW_INDEX, RAW_SAMPLES, Paths
from pipeline.data.classes import Listing

SAMPLE_COLUMNS = ["path", "class", "part", "sha256"]


@dataclass(frozen=True)
class RawIndex:
    """What `index.json` says of a raw dataset."""

    kind: Literal["images", "table"]
    classes: tuple[str, ...]
    layout: str
    samples: int
    ignored: dict[str, int]


def write_index(folder: Path, kind: Literal["images", "table"], listing: Listing, samples: pd.DataFrame) -> RawIndex:
    """Write `samples.csv` and `index.json` into the raw folder, beside the samples; returns the index."""
    index = RawIndex(kind, listing.classes, listing.layout, len(samples), listing.ignored)
    samples[SAMPLE_COLUMNS].to_csv(folder / RAW_SAMPLES, index=False, lineterminator="\n")
    write_json(folder / RAW_INDEX, {**index.__dict__, "classes": list(index.classes)})
    return index


def read_index(paths: Paths, dataset: str) -> RawIndex:
    """The raw dataset's `index.json`; an error that says to run the download stage when it is missing."""
    found = json.loads(_downloaded(paths.raw_index(dataset), dataset).read_text())
    return RawIndex(found["kind"], tuple(found["classes"]), found["layout"], found["samples"], found["ignored"])


def read_samples(paths: Paths, dataset: str) -> pd.DataFrame:
    """The raw dataset's samples (`path`, `class`, `part`, `sha256`), in `samples.csv`'s order."""
    return pd.read_csv(_downloaded(paths.raw_samples(dataset), dataset), dtype=str, keep_default_na=False)


def _downloaded(path: Path, dataset: str) -> Path:
    """`path`, a file the download stage writes; an error that says to run that stage when it is missing."""
    if not path.is_file():
        raise PipelineError(f"{path}: not found; run the download stage first (dvc repro download@{dataset})")
    return path
