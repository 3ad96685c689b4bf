"""Write a tree of images (`pipeline.data.tree`) in the raw layout (`pipeline.data.raw`): what every image source
ends in. The tree is read in its layout (`pipeline.data.layouts`), its images copied with their bytes into
`images.zip` and hashed on the way for the split's leakage check, behind a progress bar."""

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from pipeline.config.datasets import DataSource
from pipeline.core.paths import RAW_ARCHIVE
from pipeline.data.archive import write_zip
from pipeline.data.layouts import read_listing
from pipeline.data.raw import SAMPLE_COLUMNS, RawIndex, write_index
from pipeline.data.tree import Tree


def ingest(tree: Tree, data: DataSource, key: str, folder: Path) -> RawIndex:
    """Read `tree` in `data.layout` (and `data.classes`) and write its images into `folder` in the raw layout."""
    listing = read_listing(tree, data.layout, data.classes, key)
    hashes: dict[str, str] = {}

    def hashed() -> Iterator[tuple[str, bytes]]:
        names = [sample.path for sample in listing.samples]
        for name, blob in tqdm(tree.read_many(names), total=len(names), desc=f"read {tree.shown}", disable=None):
            hashes[name] = hashlib.sha256(blob).hexdigest()
            yield name, blob

    write_zip(folder / RAW_ARCHIVE, hashed())
    rows = [(sample.path, sample.cls, sample.part or "", hashes[sample.path]) for sample in listing.samples]
    return write_index(folder, "images", listing, pd.DataFrame(rows, columns=SAMPLE_COLUMNS))
