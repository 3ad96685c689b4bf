"""What the pipeline knows about each dataset: its classes, its sources, and how its raw samples are stored."""

import re
from dataclasses import dataclass
from typing import Literal

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@dataclass(frozen=True)
class DatasetSpec:
    """Static facts about a dataset; its params (source, split, preprocess) live in params.yaml.

    `image_name` matches a member path of the raw archive and captures the class (`cls`), optionally the image's
    number (`num`) and the official part it belongs to (`part`: train or test). A dataset with `official_test`
    keeps its official test images as the test split; the others split one pool three ways.

    `kind` is `images` (a raw zip of encoded images) or `table` (a raw CSV, one sample per row, a `class` column
    and numeric feature columns); for a table `image_name` is unused.
    """

    name: str
    classes: tuple[str, ...]
    sources: tuple[str, ...]
    image_name: re.Pattern[str]
    official_test: bool = False
    kind: Literal["images", "table"] = "images"

    def class_of(self, member: str) -> str | None:
        """The class an archive member belongs to, or None when its name is not one of the dataset's images."""
        match = self.image_name.fullmatch(member)
        return match.group("cls") if match else None

    def number_of(self, member: str) -> int:
        """The image's number within its class (`cat.17.jpg` is 17), for a natural sort order; -1 if none."""
        match = self.image_name.fullmatch(member)
        number = match.groupdict().get("num") if match else None
        return int(number) if number else -1

    def part_of(self, member: str) -> str:
        """The official part (`train` or `test`) an image comes from; `train` for datasets without one."""
        match = self.image_name.fullmatch(member)
        return (match.groupdict().get("part") if match else None) or "train"


CATSDOGS = DatasetSpec(
    name="catsdogs",
    classes=("cat", "dog"),
    sources=("sample", "kaggle", "local"),
    image_name=re.compile(r"(?:.*/)?(?P<cls>cat|dog)\.(?P<num>\d+)\.jpg"),
)

CIFAR10 = DatasetSpec(
    name="cifar10",
    classes=CIFAR10_CLASSES,
    sources=("sample", "torchvision", "local"),
    image_name=re.compile(
        rf"(?P<part>train|test)/(?P<cls>{'|'.join(CIFAR10_CLASSES)})/(?:(?P<num>\d+)|[^/]+)\.(?:png|jpe?g|bmp)"
    ),
    official_test=True,
)

IRIS = DatasetSpec(
    name="iris",
    classes=("setosa", "versicolor", "virginica"),
    sources=("sklearn",),
    image_name=re.compile(r"(?!)"),
    kind="table",
)

DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (CATSDOGS, CIFAR10, IRIS)}


def dataset_spec(name: str) -> DatasetSpec:
    """Look a dataset up by name; an unknown name lists the known ones."""
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None
