"""Params of the data stages: where each dataset comes from (`data`), how it is split (`split`) and how its
images are stored (`preprocess`); one typed block per dataset."""

from typing import Any, Literal

from pydantic import Field, model_validator

from pipeline.config.base import Block, Count
from pipeline.core.errors import PipelineError


class DataSource(Block):
    """Where a dataset's raw images come from; `local` reads the user's copy at `path`."""

    source: str = "sample"
    path: str | None = None

    @model_validator(mode="after")
    def _local_needs_path(self) -> "DataSource":
        if self.source == "local" and not self.path:
            raise ValueError("source 'local' needs 'path' to point at your copy of the dataset")
        return self


class CatsDogsData(DataSource):
    source: Literal["sample", "kaggle", "local"] = "sample"
    sample_per_class: Count = 2000


class Cifar10Data(DataSource):
    source: Literal["sample", "torchvision", "local"] = "sample"
    sample_per_class: Count = 200
    sample_test_per_class: Count = 100


class IrisData(DataSource):
    source: Literal["sklearn"] = "sklearn"


class CountSplit(Block):
    """Images per class in each split, drawn from one pool (dogs-vs-cats has no official test set)."""

    train: Count = 1000
    val: Count = 500
    test: Count = 500


class HoldoutSplit(Block):
    """A validation share held out of the official training set; the official test set stays the test split."""

    val_fraction: float = Field(0.1, gt=0, lt=1)
    seed: int = Field(43, ge=0)
    max_train_per_class: Count | None = None
    max_test_per_class: Count | None = None


Resize = Literal["squash", "crop", "pad"]


class PreprocessParams(Block):
    """How images are stored: a `size` x `size` square in `color`; `resize` says how a non-square image becomes
    square: `squash` stretches it, `crop` keeps the centre of its short side, `pad` keeps it whole between black
    bars."""

    size: int = Field(80, ge=8, le=1024)
    color: Literal["gray", "rgb"] = "gray"
    resize: Resize = "squash"
    normalize: bool = False


class Cifar10Preprocess(PreprocessParams):
    size: int = Field(32, ge=8, le=1024)
    color: Literal["gray", "rgb"] = "rgb"
    normalize: bool = True


class TablePreprocess(Block):
    """A table's features are stored as they are; `normalize` standardises them with the training split's stats."""

    normalize: bool = True


class PerDataset(Block):
    """One optional block per known dataset; the datasets present are the ones the pipeline runs."""

    def names(self) -> list[str]:
        """The datasets that have a block here."""
        return [name for name in type(self).model_fields if getattr(self, name) is not None]

    def __getitem__(self, name: str) -> Any:
        if name not in self.names():
            raise PipelineError(f"unknown dataset {name!r}: params.yaml has {', '.join(self.names())}")
        return getattr(self, name)

    def __contains__(self, name: object) -> bool:
        return name in self.names()


class DataBlocks(PerDataset):
    catsdogs: CatsDogsData | None = None
    cifar10: Cifar10Data | None = None
    iris: IrisData | None = None


class SplitBlocks(PerDataset):
    catsdogs: CountSplit | None = None
    cifar10: HoldoutSplit | None = None
    iris: CountSplit | None = None


class PreprocessBlocks(PerDataset):
    catsdogs: PreprocessParams | None = None
    cifar10: Cifar10Preprocess | None = None
    iris: TablePreprocess | None = None
