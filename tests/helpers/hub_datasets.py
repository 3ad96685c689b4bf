"""Hugging Face Hub datasets as the Hub stores them, written with `datasets` itself: parquet shards with an `Image`
column and a `ClassLabel` column (`plain_text/train-00000-of-00001.parquet`, as `uoft-cs/cifar10` has them), made from
the same files a folder of class folders holds, so the two can be compared."""

from pathlib import Path

from datasets import ClassLabel, Dataset, Features, Image, Value

CONFIG = "plain_text"
HUB_SPLITS = {"train": "train", "val": "validation", "test": "test"}


def write_hub_folder(
    root: Path,
    files: dict[str, bytes],
    classes: list[str],
    *,
    image_column: str = "img",
    label_column: str = "label",
    shards: int = 1,
    keep_names: bool = True,
) -> Path:
    """Write `files` (`<part>/<class>/<name>` as split folders hold them, part train, val or test) as the Hub's
    parquet shards under `root/plain_text/`, one file per split (or `shards` files each); the image keeps its file
    name (`keep_names`) as the Hub's Image feature does, else none. Returns `root`."""
    by_part: dict[str, list[tuple[str, str, bytes]]] = {}
    for name, blob in sorted(files.items()):
        part, cls, base = name.split("/", 2)
        by_part.setdefault(part, []).append((cls, base, blob))
    features = Features({image_column: Image(), label_column: ClassLabel(names=classes)})
    for part, rows in by_part.items():
        dataset = Dataset.from_dict(
            {
                image_column: [{"bytes": blob, "path": base if keep_names else None} for _, base, blob in rows],
                label_column: [classes.index(cls) for cls, _, _ in rows],
            },
            features=features,
        )
        write_shards(root / CONFIG, HUB_SPLITS[part], dataset, shards)
    return root


def write_hub_cache(root: Path, repo_id: str, commits: dict[str, dict[str, bytes]], classes: list[str]) -> Path:
    """The Hub's cache (HF_HUB_CACHE) as `snapshot_download` leaves it after fetching each of the dataset's `commits`
    (commit hash -> its files, as `write_hub_folder` takes them), the first of them its main branch. Returns `root`."""
    repo = root / f"datasets--{repo_id.replace('/', '--')}"
    for commit, files in commits.items():
        write_hub_folder(repo / "snapshots" / commit, files, classes)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(next(iter(commits)))
    return root


def write_hub_rows(root: Path, rows: dict[str, list[tuple[bytes, int]]], classes: list[str]) -> Path:
    """Each split's (image bytes, label) rows, in their order and with no stored file name, as the Hub's parquet
    shards under `root/plain_text/` (as `uoft-cs/cifar10`'s images, encoded from arrays, are). Returns `root`."""
    features = Features({"img": Image(), "label": ClassLabel(names=classes)})
    for split, cells in rows.items():
        dataset = Dataset.from_dict(
            {"img": [{"bytes": blob, "path": None} for blob, _ in cells], "label": [label for _, label in cells]},
            features=features,
        )
        write_shards(root / CONFIG, split, dataset)
    return root


def write_shards(folder: Path, split: str, dataset: Dataset, shards: int = 1) -> None:
    """`dataset` as `<split>-0000k-of-0000n.parquet` files in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(shards):
        dataset.shard(shards, index, contiguous=True).to_parquet(
            str(folder / f"{split}-{index:05d}-of-{shards:05d}.parquet")
        )


def string_labels(root: Path, rows: list[tuple[bytes, str]]) -> Path:
    """A train split whose label column is plain strings (no ClassLabel) under `root/data/`."""
    features = Features({"image": Image(), "label": Value("string")})
    dataset = Dataset.from_dict(
        {"image": [{"bytes": blob, "path": None} for blob, _ in rows], "label": [label for _, label in rows]},
        features=features,
    )
    write_shards(root / "data", "train", dataset)
    return root
