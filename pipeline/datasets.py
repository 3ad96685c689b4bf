"""What the pipeline knows about each dataset: its classes and how its raw images are named."""

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetSpec:
    """Static facts about a dataset; its params (source, split, preprocess) live in params.yaml."""

    name: str
    classes: tuple[str, ...]
    sources: tuple[str, ...]
    image_name: re.Pattern[str]

    def class_of(self, member: str) -> str | None:
        """The class an archive member belongs to, or None when its name is not one of the dataset's images."""
        match = self._match(member)
        return match.group("cls") if match else None

    def number_of(self, member: str) -> int:
        """The image's number within its class (`cat.17.jpg` is 17), for a natural sort order; -1 if none."""
        match = self._match(member)
        return int(match.group("num")) if match else -1

    def _match(self, member: str) -> re.Match[str] | None:
        return self.image_name.fullmatch(member.rsplit("/", 1)[-1])


CATSDOGS = DatasetSpec(
    name="catsdogs",
    classes=("cat", "dog"),
    sources=("sample", "kaggle", "local"),
    image_name=re.compile(r"(?P<cls>cat|dog)\.(?P<num>\d+)\.jpg"),
)

DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (CATSDOGS,)}


def dataset_spec(name: str) -> DatasetSpec:
    """Look a dataset up by name; an unknown name lists the known ones."""
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None
