"""Write a tree of images (`pipeline.data.tree`) in the raw layout (`pipeline.data.raw`): what every image source
ends in. The tree is read in its layout (`pipeline.data.layouts`), its images copied with their bytes into
`images.zip`, behind a progress bar, and on the way hashed for the split's leakage check and judged from their
header (`pipeline.data.images.refusal`: the `skip` column). A class (of a part) with no usable image is refused
before the raw layout is complete (`pipeline.data.classes.refuse_unusable`): the download stage writes it whole or
not at all."""

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from pipeline.config.datasets import DataSource
from pipeline.core.paths import RAW_ARCHIVE
from pipeline.data.archive import write_zip
from pipeline.data.classes import refuse_unusable
from pipeline.data.images import refusal
from pipeline.data.layouts import read_listing
from pipeline.data.raw import SAMPLE_COLUMNS, RawIndex, write_index
from pipeline.data.tree import Tree


def ingest(tree: Tree, data: DataSource, key: str, folder: Path) -> RawIndex:
    """Read `tree` in `data.layout` (and `data.classes`; a source's own layout and class order where it has them)
    and write its images into `folder` in the raw layout, with the source's revision if any; an error naming `key`
    and the class's home in the tree when a class has no usable image."""
    listing = read_listing(tree, tree.layout or data.layout, data.classes or tree.classes, key)
    hashes: dict[str, str] = {}
    skips: dict[str, str] = {}

    def hashed() -> Iterator[tuple[str, bytes]]:
        names = [sample.path for sample in listing.samples]
        for name, blob in tqdm(tree.read_many(names), total=len(names), desc=f"read {tree.shown}", disable=None):
            hashes[name] = hashlib.sha256(blob).hexdigest()
            skips[name] = refusal(blob, name)
            yield name, blob

    write_zip(folder / RAW_ARCHIVE, hashed())
    refuse_unusable(listing, skips, key, tree.entry)
    rows = [
        (sample.path, sample.cls, sample.part or "", hashes[sample.path], skips[sample.path])
        for sample in listing.samples
    ]
    return write_index(folder, "images", listing, pd.DataFrame(rows, columns=SAMPLE_COLUMNS), tree.revision)
