"""Params of the data stages, one typed block per dataset: where it comes from (`data.<name>`), how it is split
(`split.<name>`) and how its images are stored (`preprocess.<name>`).

Every dataset goes through the same blocks. The built-in names have their own sources besides `local`: `catsdogs`
(`sample`, `kaggle`), `cifar10` (`sample`, `torchvision`) and `iris` (`sklearn`, a table); any other name is the
user's own images, `source: local` at `path`, in any layout `pipeline.data.layouts` reads, or a Hugging Face Hub
dataset, `source: hf` (any dataset may come from the Hub: `path` is its id or a folder of its parquet shards),
unless it says
`builtin: <name>`: then it is another copy of that built-in dataset, with that dataset's sources and keys (the same
images split or stored another way, e.g. dogs-vs-cats in colour at a larger size beside the classic grayscale
80x80). `split.<name>` and `preprocess.<name>` are optional: a dataset without one gets the block's defaults.
"""

from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, PlainValidator, model_validator

from pipeline.config.base import Block, Count

SHARE = "an int >= 1 (images per class) or a float in (0, 1) (that fraction of each class)"


def _share(value: Any) -> int | float:
    """A split size: images per class (an int >= 1) or a fraction of each class (a float in (0, 1))."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected {SHARE}")
    if isinstance(value, int) and value < 1 or isinstance(value, float) and not 0 < value < 1:
        raise ValueError(f"expected {SHARE}")
    return value


Share = Annotated[int | float, PlainValidator(_share)]
Resize = Literal["squash", "crop", "pad"]
HUB_KEYS = ("revision", "image_column", "label_column")
REVIEWS = "reviews"  # the reviewed audit findings (exclude, relabel): split depends on the whole folder


class DataSource(Block):
    """Where a dataset's raw images come from; `local` reads the user's folder, zip or tar at `path`, in `layout`
    (`auto` detects it), with `classes` fixing the class order or taking a subset (null: every class, sorted); `hf`
    reads a Hugging Face Hub dataset (`path`: its id or a folder of its parquet shards) at `revision`, its images and
    labels from the columns its features say (or `image_column`, `label_column`), its classes in the ClassLabel's
    order."""

    builtin: Literal["catsdogs", "cifar10", "iris"] | None = Field(
        None, description="Another copy of this built-in dataset, with its sources and keys, split or stored another way."
    )
    source: Literal["local", "hf"] = Field(
        "local", description="local: your own images, read from `path`; hf: a Hugging Face Hub dataset."
    )
    path: str | None = Field(
        None,
        description="A folder of images, or a .zip / .tar(.gz) of one; for hf, a Hub dataset id (OWNER/NAME) or a "
        "folder of its parquet shards.",
    )
    revision: str | None = Field(
        None, description="hf: the Hub branch, tag or commit to read (null: main); the commit read is recorded."
    )
    image_column: str | None = Field(None, description="hf: the image column (null: the one Image feature).")
    label_column: str | None = Field(None, description="hf: the label column (null: the one ClassLabel feature).")
    layout: str = Field(
        "auto",
        description="auto (detected), class_folders, split_folders, names or csv (csv:<file> names one manifest).",
    )
    classes: list[str] | None = Field(
        None, description="null: every class, sorted (the labels 0, 1, ...); a list fixes the order or takes a subset."
    )

    @property
    def kind(self) -> Literal["images", "table"]:
        """`table` for a dataset of feature rows (Iris), `images` for every other."""
        return "table" if self.source == "sklearn" else "images"

    @model_validator(mode="after")
    def _local_needs_path(self) -> "DataSource":
        if self.source == "local" and not self.path:
            raise ValueError("source 'local' needs 'path' to point at your images (a folder, a .zip or a .tar.gz)")
        if self.source == "hf" and not self.path:
            raise ValueError("source 'hf' needs 'path': a Hub dataset id (OWNER/NAME) or a folder of parquet shards")
        return self

    @model_validator(mode="after")
    def _hub_keys_for_hub(self) -> "DataSource":
        for key in HUB_KEYS:
            if self.source != "hf" and getattr(self, key) is not None:
                raise ValueError(f"{key} applies to source 'hf' only; remove it, or set source: hf")
        return self


class CatsDogsData(DataSource):
    """dogs-vs-cats: the Kaggle layout (`cat.<n>.jpg`, `dog.<n>.jpg` in one folder) and its two classes."""

    source: Literal["sample", "kaggle", "local", "hf"] = "sample"  # type: ignore[assignment]
    layout: str = "names"
    classes: list[str] | None = Field(default_factory=lambda: ["cat", "dog"])
    sample_per_class: Count = 2000


class Cifar10Data(DataSource):
    source: Literal["sample", "torchvision", "local", "hf"] = "sample"  # type: ignore[assignment]
    sample_per_class: Count = 200
    sample_test_per_class: Count = 100


class IrisData(DataSource):
    source: Literal["sklearn"] = "sklearn"  # type: ignore[assignment]


BUILTIN_DATA: dict[str, type[DataSource]] = {"catsdogs": CatsDogsData, "cifar10": Cifar10Data, "iris": IrisData}


def data_block(name: str, values: dict[str, Any]) -> type[DataSource]:
    """The params class of `data.<name>`: a built-in dataset's own (by its name, or the block's `builtin` key), else
    the user's images (`source: local`); an unknown `builtin`, or one that is not a name, is left for the block's
    validation to name."""
    builtin = values.get("builtin")
    return BUILTIN_DATA.get(builtin if isinstance(builtin, str) and builtin else name, DataSource)


class SplitParams(Block):
    """How one dataset becomes train / val / test: each of `train`, `val`, `test` is images per class (an int:
    every class gives exactly that many) or a fraction of each class (a float in (0, 1): an imbalanced dataset keeps
    its proportions); `train: null` takes what is left. A part the dataset brings (split folders, CIFAR-10's official
    test set) is used as given, capped at `max_<part>_per_class`; the train cap applies before val and test are held
    out of it. `seed` null is the global seed. `val_fraction` is the older name of a fractional `val`. `exclude` (a
    CSV with a `path` column) and `relabel` (`path,label`) are reviewed audit findings, files under `reviews/`;
    `near_duplicates` says whether a near-duplicate of an image in an earlier split is dropped from the later one."""

    train: Share | None = None
    val: Share = Field(0.15, validation_alias=AliasChoices("val", "val_fraction"))
    test: Share = 0.15
    seed: int | None = Field(None, ge=0)
    max_train_per_class: Count | None = None
    max_val_per_class: Count | None = None
    max_test_per_class: Count | None = None
    exclude: str | None = None
    relabel: str | None = None
    near_duplicates: Literal["keep", "drop_across"] = "drop_across"

    @model_validator(mode="after")
    def _reviews_in_their_folder(self) -> "SplitParams":
        for key in ("exclude", "relabel"):
            value = getattr(self, key)
            if value is not None and not value.startswith(f"{REVIEWS}/"):
                raise ValueError(f"{key}: {value!r} must be a file under {REVIEWS}/, the folder split depends on")
        return self

    @model_validator(mode="after")
    def _leaves_training_images(self) -> "SplitParams":
        shares = [share for share in (self.train, self.val, self.test) if isinstance(share, float)]
        if sum(shares) >= 1:
            raise ValueError(f"the fractions add up to {sum(shares):g}; together they must stay under 1")
        return self

    def draw_seed(self, seed: int) -> int:
        """The seed of the draws: the block's own, else the global `seed`."""
        return seed if self.seed is None else self.seed

    def cap(self, part: str) -> int | None:
        """The most images per class `part` keeps (None: no cap)."""
        value: int | None = getattr(self, f"max_{part}_per_class")
        return value


class PreprocessParams(Block):
    """How images are stored: an `image_size` x `image_size` square in `color`; `resize` says how a non-square image becomes
    square: `squash` stretches it, `crop` keeps the centre of its short side, `pad` keeps it whole between black
    bars. `normalize` standardises inputs with the training split's per-channel mean and std."""

    renamed = {"size": "image_size"}
    image_size: int = Field(80, ge=8, le=1024)
    color: Literal["gray", "rgb"] = "rgb"
    resize: Resize = "squash"
    normalize: bool = True


class TablePreprocess(Block):
    """A table's features are stored as they are; `normalize` standardises them with the training split's stats."""

    normalize: bool = True


def preprocess_block(data: DataSource) -> type[PreprocessParams] | type[TablePreprocess]:
    """The params class of `preprocess.<name>` for a dataset of this kind."""
    return TablePreprocess if data.kind == "table" else PreprocessParams
