"""The raw layout every source ends in, `data/raw/<dataset>/`: the samples themselves, `samples.csv` and
`index.json`. Split and preprocess read only this, whatever the source was, so every dataset takes one code path;
`pipeline.data.ingest` writes it for image sources, `pipeline.data.tables` for tables.

- the samples: `images.zip`, each image with the bytes its source had, named by its path in the source's tree
  (uncompressed, fixed timestamps: equal sources give equal bytes; one archive, not 100,000 loose files, keeps DVC
  fast); for a table, `table.csv` (see `pipeline.data.tables`).
- `samples.csv`: one row per sample, `path`, `class`, `part`, `sha256`, `skip`, in a stable order: part, class, then
  path in natural order (`cat.2.jpg` before `cat.10.jpg`). `part` is `train`, `val` or `test` where the source
  brings its own parts (split folders, CIFAR-10's official test set), empty for one pool. `sha256`, the content's
  hash, is what the split's leakage check compares (empty for table rows). `skip` is why the image cannot be used,
  judged from its header as it was hashed (`pipeline.data.images.refusal`: "empty file", "not a decodable image",
  ...), empty for a usable one: the split draws only from usable images.
- `index.json`: the kind (`images` or `table`), the classes in label order, the layout read, the sample count, the
  files left out, by reason, and the unusable samples, by the gist of their `skip` reason; for a source with a
  version, its `revision` (a Hugging Face Hub commit, a hash of a local folder's shards), so that a moved branch
  changes the output in `dvc.lock` and re-runs what follows.
"""

import json
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Literal

import pandas as pd

from pipeline.core.atomic import write_json
from pipeline.core.errors import PipelineError
from pipeline.core.paths import RAW_INDEX, RAW_SAMPLES, Paths
from pipeline.data.classes import Listing, gist

SAMPLE_COLUMNS = ["path", "class", "part", "sha256", "skip"]


@dataclass(frozen=True)
class RawIndex:
    """What `index.json` says of a raw dataset."""

    kind: Literal["images", "table"]
    classes: tuple[str, ...]
    layout: str
    samples: int
    ignored: dict[str, int]
    unusable: dict[str, int]
    revision: str = ""


def write_index(
    folder: Path, kind: Literal["images", "table"], listing: Listing, samples: pd.DataFrame, revision: str = ""
) -> RawIndex:
    """Write `samples.csv` and `index.json` into the raw folder, beside the samples; returns the index. The
    revision is written only where the source has one (other sources' index stays as it was)."""
    skips = [gist(reason) for reason in samples["skip"] if reason]
    unusable = {reason: skips.count(reason) for reason in sorted(set(skips))}
    index = RawIndex(kind, listing.classes, listing.layout, len(samples), listing.ignored, unusable, revision)
    samples[SAMPLE_COLUMNS].to_csv(folder / RAW_SAMPLES, index=False, lineterminator="\n")
    written = {**index.__dict__, "classes": list(index.classes)}
    write_json(folder / RAW_INDEX, written if revision else {k: v for k, v in written.items() if k != "revision"})
    return index


def read_index(paths: Paths, dataset: str) -> RawIndex:
    """The raw dataset's `index.json`; an error that says to run the download stage when it is missing or was
    written by an older version."""
    path = _downloaded(paths.raw_index(dataset), dataset)
    found = json.loads(path.read_text())
    names = [field.name for field in fields(RawIndex)]
    if not {field.name for field in fields(RawIndex) if field.default is MISSING} <= set(found):
        raise _outdated(path, dataset)
    return RawIndex(**{**{name: found[name] for name in names if name in found}, "classes": tuple(found["classes"])})


def read_samples(paths: Paths, dataset: str) -> pd.DataFrame:
    """The raw dataset's samples (`SAMPLE_COLUMNS`), in `samples.csv`'s order."""
    path = _downloaded(paths.raw_samples(dataset), dataset)
    samples = pd.read_csv(path, dtype=str, keep_default_na=False)
    if not set(SAMPLE_COLUMNS) <= set(samples.columns):
        raise _outdated(path, dataset)
    return samples


def _outdated(path: Path, dataset: str) -> PipelineError:
    """The error for a raw file that lacks what this version writes."""
    return PipelineError(
        f"{path}: written by an older version of the download stage; run it again (dvc repro download@{dataset})"
    )


def _downloaded(path: Path, dataset: str) -> Path:
    """`path`, a file the download stage writes; an error that says to run that stage when it is missing."""
    if not path.is_file():
        raise PipelineError(f"{path}: not found; run the download stage first (dvc repro download@{dataset})")
    return path
