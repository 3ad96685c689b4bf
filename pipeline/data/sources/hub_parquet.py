"""A Hugging Face Hub dataset's parquet shards (a folder as `datasets.load_dataset(folder)` takes it) as a tree in
the split-folders layout: `<part>/<class>/<image>`, so that the layouts' reader and the raw layout's writer serve it
as they serve a folder.

The Hub's splits are found by `datasets`' own file-name rules (`train-00000-of-00002.parquet`, `data/test-*`, ...):
`train` is our train part, `validation` (or `valid`, `val`, `dev`) our val, `test` our test, as CIFAR-10's official
test set is. The image and label columns come from the features `datasets` writes into each shard (the one `Image`
column, the one `ClassLabel` column: its names are the classes, in label order), or from the keys that name them.
An image is named by the file name the dataset stored with it, else by its row (`00012.png`, the suffix its header
says). Shards are read a batch of rows at a time, with pyarrow: memory stays bounded whatever the dataset's size.
Rows without a label (null or -1) and the shards of other splits are left out, counted by reason.
"""

import hashlib
import json
import posixpath
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from pipeline.core.errors import PipelineError
from pipeline.data.tree import Tree

SPLIT_PARTS = {"train": "train", "validation": "val", "valid": "val", "val": "val", "dev": "val", "test": "test"}
ROWS_PER_BATCH = 256  # rows read at a time: a few MB of encoded images, whatever the shard's size
NO_LABEL = "rows without a label"
OTHER_SPLITS = "shards of splits other than train, validation and test"
LABEL_NAMES = ("label", "labels")
MAGIC_SUFFIXES = ((b"\x89PNG", ".png"), (b"\xff\xd8\xff", ".jpg"), (b"BM", ".bmp"), (b"RIFF", ".webp"))


class HubTree(Tree):
    """The images of a Hub dataset's parquet shards in `folder`, by `<part>/<class>/<image>`; `key` is the dataset's
    params block (`data.<name>`), `revision` what the download stage records of the source (a Hub commit, or a hash
    of the shard files)."""

    layout = "split_folders"

    def __init__(
        self, folder: Path, key: str, *, image_column: str | None, label_column: str | None, revision: str, shown: str
    ) -> None:
        super().__init__(folder, key, shown)
        self.revision = revision
        shards = split_shards(folder, f"{key}.path", self.shown)
        self._shards = [shard for part, files in shards.items() if part in SPLIT_PARTS for shard in files]
        self._left_out = {
            _relative(shard, folder): OTHER_SPLITS for part, files in shards.items() if part not in SPLIT_PARTS
            for shard in files
        }
        features = shard_features(self._shards[0], f"{key}.path")
        self.image_column = _column(image_column, features, _is_image, f"{key}.image_column", "an Image")
        self.label_column = _column(label_column, features, _is_class_label, f"{key}.label_column", "a ClassLabel")
        self.classes = _label_names(features[self.label_column])
        self._taken: set[str] = set()
        self._listed: dict[str, int] = {}
        self._rows = {
            shard: list(self._named_rows(shard, part)) for part, files in shards.items() if part in SPLIT_PARTS
            for shard in files
        }

    def names(self) -> list[str]:
        """Every image's `<part>/<class>/<image>`, sorted."""
        return sorted(name for rows in self._rows.values() for name in rows if name)

    def read(self, name: str) -> bytes:
        """The stored bytes of the image `name`."""
        return next(blob for found, blob in self.read_many([name]))

    def read_many(self, names: Iterable[str]) -> Iterator[tuple[str, bytes]]:
        """The images among `names`, shard by shard in their stored order, a batch of rows at a time."""
        wanted = set(names)
        for shard, rows in self._rows.items():
            if not wanted.intersection(rows):
                continue
            for name, (blob, _, _) in zip(rows, self._cells(shard), strict=True):
                if name in wanted:
                    yield name, blob

    def _named_rows(self, shard: Path, part: str) -> Iterator[str]:
        """Each row's name in the tree (its row counted across the split's shards), "" for a row without a label."""
        first = self._listed.get(part, 0)
        for row, (blob, stored, label) in enumerate(self._cells(shard), start=first):
            self._listed[part] = row + 1
            if label is None:
                self._left_out[f"{_relative(shard, self.source)}#{row - first}"] = NO_LABEL
                yield ""
                continue
            name = _unique(f"{SPLIT_PARTS[part]}/{label}/{_image_name(blob, stored, row)}", row, self._taken)
            self._taken.add(name)
            yield name

    def _cells(self, shard: Path) -> Iterator[tuple[bytes, str, str | None]]:
        """(image bytes, the file name stored with it, its class or None) of each row of `shard`, in order."""
        try:
            with pq.ParquetFile(shard) as file:
                for batch in file.iter_batches(ROWS_PER_BATCH, columns=[self.image_column, self.label_column]):
                    images, labels = batch.column(0).to_pylist(), batch.column(1).to_pylist()
                    for image, label in zip(images, labels, strict=True):
                        yield *_image_cell(image), self._class_of(label)
        except OSError as exc:
            raise PipelineError(f"{self.key}.path: cannot read {shard} ({exc}); download the dataset again") from None

    def _class_of(self, label: Any) -> str | None:
        """The class name of a label cell: a ClassLabel's name, a string as it is; None for no label."""
        if label is None or label == -1:
            return None
        if isinstance(label, int) and self.classes:
            if not 0 <= label < len(self.classes):
                raise PipelineError(f"{self.key}.label_column: label {label} is not one of the ClassLabel's "
                                    f"{len(self.classes)} names; fix the dataset's labels")
            return self.classes[label]
        return str(label)


def split_shards(folder: Path, key: str, shown: str) -> dict[str, list[Path]]:
    """The parquet shards under `folder`, by the Hub split their names say; an error naming `key` when none is
    there."""
    from datasets.data_files import DataFilesDict, get_data_patterns

    try:
        found = DataFilesDict.from_patterns(get_data_patterns(str(folder)), base_path=str(folder))
    except FileNotFoundError:
        found = {}
    parquet = {split: sorted(Path(f) for f in names if f.endswith(".parquet")) for split, names in found.items()}
    shards = {str(split): files for split, files in parquet.items() if files}
    if "train" not in shards:
        raise PipelineError(
            f"{key}: {shown} holds no train split in parquet shards (such as train-00000-of-00001.parquet or "
            "data/train-*.parquet); for a Hub dataset stored otherwise, try revision: refs/convert/parquet"
        )
    return shards


def is_parquet_folder(path: Path) -> bool:
    """True for a folder holding parquet shards (at any depth): a Hub dataset's files."""
    return path.is_dir() and next(path.rglob("*.parquet"), None) is not None


def shards_hash(folder: Path) -> str:
    """A hash of the parquet shards under `folder`, their paths and contents: what a local folder records as its
    revision."""
    digest = hashlib.sha256()
    for shard in sorted(folder.rglob("*.parquet")):
        digest.update(f"{_relative(shard, folder)}\0{_file_sha256(shard)}\n".encode())
    return f"sha256:{digest.hexdigest()}"


def shard_features(shard: Path, key: str) -> dict[str, dict]:
    """The features `datasets` stored in a shard's schema, by column; a column without them is described by its
    arrow type (`{"_type": "arrow", "type": ...}`)."""
    try:
        schema = pq.read_schema(shard)
    except OSError as exc:
        raise PipelineError(f"{key}: {shard} is not a readable parquet file ({exc}); download it again") from None
    stored = json.loads((schema.metadata or {}).get(b"huggingface", b"{}"))
    features = stored.get("info", {}).get("features", {})
    return {
        name: features.get(name) or {"_type": "arrow", "type": str(schema.field(name).type)} for name in schema.names
    }


def _column(chosen: str | None, features: dict[str, dict], fits: Any, key: str, kind: str) -> str:
    """The column `chosen` names, else the one column whose feature `fits` (for labels without a ClassLabel, the one
    named `label` or `labels`); errors name `key` and list the columns."""
    columns = ", ".join(features)
    if chosen is not None and chosen not in features:
        raise PipelineError(f"{key}: no column {chosen!r}; the dataset's columns are {columns}")
    if chosen is not None:
        return chosen
    found = [name for name, feature in features.items() if fits(feature)]
    if not found and fits is _is_class_label:
        found = [name for name in features if name in LABEL_NAMES]
    if len(found) != 1:
        which = "no" if not found else f"{len(found)} ({', '.join(found)})"
        raise PipelineError(f"{key}: the dataset has {which} column with {kind} feature; name one of: {columns}")
    return found[0]


def _is_image(feature: dict) -> bool:
    return feature.get("_type") == "Image" or "struct<bytes: binary" in str(feature.get("type", ""))


def _is_class_label(feature: dict) -> bool:
    return feature.get("_type") == "ClassLabel"


def _label_names(feature: dict) -> list[str] | None:
    """A ClassLabel's names, in label order; None for any other label column (its values are the classes)."""
    names = feature.get("names") if _is_class_label(feature) else None
    for name in names or []:
        if "/" in name or name in ("", ".", ".."):
            raise PipelineError(f"the class name {name!r} cannot name a class folder; rename it in the dataset")
    return names


def _image_cell(image: Any) -> tuple[bytes, str]:
    """An Image cell's bytes and stored file name (b"" and "" where missing)."""
    if isinstance(image, dict):
        return image.get("bytes") or b"", image.get("path") or ""
    return (image or b"") if isinstance(image, bytes) else b"", ""


def _image_name(blob: bytes, stored: str, row: int) -> str:
    """The stored file name's last part, else the row (five digits at least, as the CIFAR-10 archive's images are
    named, so that the Hub's copy of it splits as the archive does) with the suffix the bytes' header says (`.png`
    for none)."""
    base = posixpath.basename(stored.replace("\\", "/"))
    if base:
        return base
    return f"{row:05d}{next((suffix for magic, suffix in MAGIC_SUFFIXES if blob.startswith(magic)), '.png')}"


def _unique(name: str, row: int, taken: set[str]) -> str:
    """`name`, or `<stem>-<row><suffix>` (then `-<row>-<row>`, ...) while another row already has it."""
    while name in taken:
        stem, suffix = posixpath.splitext(name)
        name = f"{stem}-{row}{suffix}"
    return name


def _relative(path: Path, folder: Path) -> str:
    return path.relative_to(folder).as_posix()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
