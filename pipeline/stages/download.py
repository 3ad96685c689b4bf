"""Stage `download`: bring a dataset's raw images into the raw layout (`data/raw/<dataset>/images.zip`).

dogs-vs-cats: `sample` generates the embedded synthetic set, `kaggle` fetches the competition, `local` takes the
user's zip or folder. CIFAR-10: `sample` generates a synthetic set in the official pickle format, `torchvision`
fetches the official archive, `local` takes the user's archive, extracted folder or class-folder tree. All end in
the same archive, which the later stages read with the same code. Iris: `sklearn`, the copy scikit-learn ships,
written as a raw table (see `pipeline.data.tables`).
"""

import io
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.config.datasets import CatsDogsData, Cifar10Data, DataSource, IrisData
from pipeline.core.atomic import atomic_path
from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths
from pipeline.data.archive import (
    IGNORED_PREFIXES,
    raw_file,
    raw_samples,
    refuse_unsafe,
    write_zip,
)
from pipeline.data.sources.cifar_batches import png_members, read_tar
from pipeline.data.sources.cifar_local import local_members
from pipeline.data.sources.cifar_official import cache_dir, fetch_official
from pipeline.data.sources.cifar_sample import cifar10_sample
from pipeline.data.sources.kaggle import fetch_competition
from pipeline.data.sources.sample import catsdogs_sample
from pipeline.data.specs import CATSDOGS, DatasetSpec, dataset_spec
from pipeline.data.tables import write_iris

KAGGLE_COMPETITION = "dogs-vs-cats"
INNER_ARCHIVE = "train.zip"
ZIP_MAGIC = b"PK\x03\x04"  # a zip's first local file header


def download(dataset: str, data: DataSource, seed: int, paths: Paths) -> int:
    """Produce the dataset's raw archive (or table) from the configured source; returns the number of samples."""
    spec = dataset_spec(dataset)
    DOWNLOADERS[dataset](data, seed, raw_file(paths, spec))
    return len(raw_samples(paths, spec)[1])


def download_catsdogs(data: CatsDogsData, seed: int, target: Path) -> None:
    """Write dogs-vs-cats' raw archive from the sample, the Kaggle competition or the user's copy."""
    if data.source == "sample":
        write_zip(target, catsdogs_sample(data.sample_per_class, seed))
    elif data.source == "kaggle":
        ingest(fetch_competition(KAGGLE_COMPETITION), target, CATSDOGS, key="data.catsdogs.source")
    else:
        ingest(Path(data.path or ""), target, CATSDOGS, key="data.catsdogs.path")


def download_cifar10(data: Cifar10Data, seed: int, target: Path) -> None:
    """Write CIFAR-10's raw archive from the sample, the official archive (via torchvision) or the user's copy.

    The sample is generated as the official archive's bytes and goes through the same reader.
    """
    if data.source == "sample":
        sample = io.BytesIO(cifar10_sample(data.sample_per_class, data.sample_test_per_class, seed))
        members = png_members(read_tar(sample, "the generated sample", "data.cifar10.source"))
    elif data.source == "torchvision":
        members = local_members(fetch_official(cache_dir()), "data.cifar10.source")
    else:
        members = local_members(Path(data.path or ""), "data.cifar10.path")
    write_zip(target, members)


def download_iris(data: IrisData, seed: int, target: Path) -> None:
    """Write Iris's raw table from the copy scikit-learn ships (the seed is unused: the data is fixed)."""
    write_iris(target)


DOWNLOADERS: dict[str, Callable[[Any, int, Path], None]] = {
    "catsdogs": download_catsdogs,
    "cifar10": download_cifar10,
    "iris": download_iris,
}


def ingest(source: Path, target: Path, spec: DatasetSpec, key: str) -> None:
    """Turn a user's `train.zip`, competition zip, extracted folder or competition folder into the raw archive."""
    if source.is_dir():
        _ingest_folder(source, target, spec, key)
    elif source.is_file() and _looks_like_zip(source):
        _ingest_zip(source, target, spec, key)
    elif source.exists():
        raise PipelineError(f"{key}: {source} is neither a zip file nor a folder")
    else:
        raise PipelineError(f"{key}: {source} does not exist; point it at train.zip, the competition zip or a folder")


def _looks_like_zip(path: Path) -> bool:
    """A readable zip, or a file that starts like one (a truncated download, which the zip reader then names)."""
    with path.open("rb") as file:
        return file.read(len(ZIP_MAGIC)) == ZIP_MAGIC or zipfile.is_zipfile(path)


def _ingest_folder(source: Path, target: Path, spec: DatasetSpec, key: str) -> None:
    inner = source / INNER_ARCHIVE
    if inner.is_file():
        _ingest_zip(inner, target, spec, key)
        return
    images: dict[str, Path] = {}
    for path in sorted(source.rglob("*")):
        if path.is_file() and spec.class_of(path.name) and "__MACOSX" not in path.parts:
            images.setdefault(path.name, path)
    if not images:
        raise PipelineError(f"{key}: {source} holds no {INNER_ARCHIVE} and no images named like {_example(spec)}")
    write_zip(target, ((f"train/{name}", path.read_bytes()) for name, path in sorted(images.items())))


def _ingest_zip(source: Path, target: Path, spec: DatasetSpec, key: str) -> None:
    """A zip of the dataset's images becomes the raw archive as it is; a zip holding `train.zip` gives that one."""
    try:
        with zipfile.ZipFile(source) as archive:
            names = _entry_names(archive, str(source), key)
            if any(spec.class_of(name) for name in names):
                with atomic_path(target) as tmp:
                    shutil.copyfile(source, tmp)
            else:
                _ingest_inner(archive, names, source, target, spec, key)
    except zipfile.BadZipFile as exc:
        raise PipelineError(f"{key}: {source} is a corrupt zip ({exc}); download it again") from None


def _ingest_inner(
    archive: zipfile.ZipFile, names: list[str], source: Path, target: Path, spec: DatasetSpec, key: str
) -> None:
    """Copy the `train.zip` inside a competition zip as the raw archive, once it is checked to hold the images."""
    inner = [name for name in names if name.rsplit("/", 1)[-1] == INNER_ARCHIVE]
    if not inner:
        raise PipelineError(f"{key}: {source} holds no {INNER_ARCHIVE} and no images named like {_example(spec)}")
    where = f"{inner[0]} inside {source}"
    with atomic_path(target) as tmp:
        with archive.open(inner[0]) as src, tmp.open("wb") as dst:
            shutil.copyfileobj(src, dst, length=1 << 20)
        if not zipfile.is_zipfile(tmp):
            raise PipelineError(f"{key}: {where} is not a zip file")
        with zipfile.ZipFile(tmp) as extracted:
            if not any(spec.class_of(name) for name in _entry_names(extracted, where, key)):
                raise PipelineError(f"{key}: {where} holds no images named like {_example(spec)}")


def _entry_names(archive: zipfile.ZipFile, where: str, key: str) -> list[str]:
    """The archive's entry names less macOS metadata, once none of them points outside the archive."""
    refuse_unsafe(archive.namelist(), where, key)
    return [name for name in archive.namelist() if not name.startswith(IGNORED_PREFIXES)]


def _example(spec: DatasetSpec) -> str:
    return " / ".join(f"{name}.N.jpg" for name in spec.classes)
