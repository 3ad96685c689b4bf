"""Typed, validated params.

params.yaml is read once into a `Params` object; every stage takes the parts it needs. Every problem is
reported with the dotted key it concerns (`aug.hflip`, `models.catsdogs_cnn.epochs`) before any work starts.
Each dataset has its own typed blocks under `data`, `split` and `preprocess`; each architecture its own args.
"""

import difflib
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Strict, Tag, ValidationError, model_validator
from ruamel.yaml import YAML, YAMLError

from pipeline.errors import PipelineError

Probability = Annotated[float, Field(ge=0, le=1)]
Count = Annotated[int, Field(ge=1)]
FromList = Strict(False)  # YAML has no tuples: a fixed-length field takes a list (its items stay strictly typed)
BlockT = TypeVar("BlockT", bound="Block")


class Block(BaseModel):
    """A params block: unknown keys are errors, values are immutable once read, and a value must have its field's
    type (`epochs: true` or `lr: "0.1"` is an error, not 1 or 0.1); an integer is a valid float."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


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


class PreprocessParams(Block):
    size: int = Field(80, ge=8, le=1024)
    color: Literal["gray", "rgb"] = "gray"
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


class AugParams(Block):
    rotation: float = Field(0, ge=0, le=180)
    shift: float = Field(0, ge=0, le=0.5)
    zoom: float = Field(0, ge=0, lt=1)
    shear: float = Field(0, ge=0, lt=90)
    p: Probability = 1.0
    hflip: Probability = 0
    vflip: Probability = 0
    brightness: float = Field(0, ge=0, le=1)
    contrast: float = Field(0, ge=0, le=1)
    crop_padding: int = Field(0, ge=0, le=64)


class LrStep(Block):
    """One piece of a step schedule: this learning rate, held for this many epochs."""

    lr: float = Field(gt=0)
    epochs: Count


LrSchedule = Annotated[
    Annotated[Literal["constant", "cosine"], Tag("named")] | Annotated[list[LrStep], Field(min_length=1), Tag("steps")],
    Discriminator(lambda value: "steps" if isinstance(value, list | tuple) else "named"),
]
UNION_TAGS = {"named", "steps"}


class TrainParams(Block):
    epochs: Count = 10
    batch_size: Count = 32
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0)
    lr_schedule: LrSchedule = "constant"
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(0, ge=0)
    l1: float = Field(0, ge=0)
    l2: float = Field(0, ge=0)
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    workers: Annotated[int, Field(ge=0)] | Literal["auto"] = "auto"
    data_on_device: bool = False
    amp: bool = True


DEVICE_AUG_KEYS = ("crop_padding", "shift", "p", "hflip", "vflip")  # what `batch_augment` does as tensor ops


class CatsDogsCnnArgs(Block):
    """The classic dogs-vs-cats convnet: three conv-maxpool-dropout blocks, a dense layer, one sigmoid output."""

    dropout: Annotated[tuple[Probability, Probability, Probability], FromList] = (0.25, 0.25, 0.5)
    dense: Count = 32


class MlpArgs(Block):
    """A multilayer perceptron on the flattened image: hidden layer widths, ReLU between."""

    hidden: Annotated[list[Count], Field(min_length=1)] = [256, 128]


BnMomentum = Annotated[float, Field(ge=0, lt=1)]
BN_MOMENTUM = 0.9


class BatchNormArgs(Block):
    """`bn_momentum`: the share of BatchNorm's running mean and variance kept at each training step (Keras's
    convention; PyTorch's `momentum` is 1 minus it). 0.9 is PyTorch's default; lower follows recent batches
    faster. Only for a model with BatchNorm layers."""

    bn_momentum: BnMomentum = BN_MOMENTUM

    @model_validator(mode="after")
    def _momentum_needs_batchnorm(self) -> "BatchNormArgs":
        if self.bn_momentum != BN_MOMENTUM and not getattr(self, "batchnorm", True):
            raise ValueError("bn_momentum is set, but the model has no BatchNorm layers (batchnorm: false)")
        return self


class CifarCnnArgs(BatchNormArgs):
    """Three blocks of two 3x3 convs and a 2x2 maxpool, then a dense layer; BatchNorm and Dropout optional."""

    widths: Annotated[tuple[Count, Count, Count], FromList] = (32, 64, 128)
    dense: Count = 128
    batchnorm: bool = False
    dropout: Annotated[tuple[Probability, Probability, Probability, Probability], FromList] = (0, 0, 0, 0)


class Vgg16Args(BatchNormArgs):
    """torchvision VGG16 (`batchnorm`: its VGG16-BN variant), ImageNet weights optional; `freeze` keeps the conv
    features fixed, else they train at `features_lr` (null: the model's own lr)."""

    pretrained: bool = True
    batchnorm: bool = False
    freeze: bool = True
    features_lr: float | None = Field(None, gt=0)
    head: Count = 256
    dropout: Probability = 0.5


class ResNet18Args(BatchNormArgs):
    """torchvision ResNet-18 from scratch; `small_input` swaps the ImageNet stem for a 3x3 stride-1 conv, no maxpool."""

    small_input: bool = True


ARCH_ARGS: dict[str, type[Block]] = {
    "catsdogs_cnn": CatsDogsCnnArgs,
    "mlp": MlpArgs,
    "cifar_cnn": CifarCnnArgs,
    "vgg16": Vgg16Args,
    "resnet18": ResNet18Args,
}


class ModelParams(BaseModel):
    """A model block: its dataset and architecture, any `train.*` key to override, and the architecture's args."""

    model_config = ConfigDict(extra="allow", frozen=True)
    dataset: str
    arch: str
    aug: dict[str, Any] = Field(default_factory=dict)


class Params(Block):
    seed: int = Field(42, ge=0)
    data: DataBlocks
    split: SplitBlocks
    preprocess: PreprocessBlocks
    aug: AugParams = AugParams()
    train: TrainParams = TrainParams()
    models: dict[str, ModelParams]

    def model(self, name: str) -> "ModelConfig":
        """The fully resolved settings of one model: its block merged over `train.*` and `aug.*`."""
        if name not in self.models:
            raise PipelineError(f"unknown model {name!r}: params.yaml `models` has {', '.join(self.models)}")
        return _resolve_model(self, name)


@dataclass(frozen=True)
class ModelConfig:
    """Everything the train stage needs to know about one model, with overrides applied."""

    name: str
    dataset: str
    arch: str
    arch_args: Block
    train: TrainParams
    aug: AugParams


def load_params(path: Path = Path("params.yaml"), overrides: list[str] | None = None) -> Params:
    """Read, override (`key=value`, as `dvc exp run -S`) and validate a params file."""
    if not path.is_file():
        raise PipelineError(f"{path}: params file not found; run from the repository root or pass --params")
    try:
        raw = _read_yaml(path.read_text()) or {}
    except YAMLError as exc:
        raise PipelineError(f"{path}: not valid YAML: {exc}") from None
    for item in overrides or []:
        _apply_override(raw, item)
    return parse_params(raw, source=str(path))


def parse_params(raw: dict[str, Any], source: str = "params.yaml") -> Params:
    """Validate a params mapping; every problem is reported with its dotted key."""
    try:
        params = Params.model_validate(raw)
    except ValidationError as exc:
        raise PipelineError(f"{source}: {_format_errors(exc)}") from None
    problems = _cross_check(params)
    if problems:
        raise PipelineError(f"{source}: " + "; ".join(problems))
    for name in params.models:
        try:
            params.model(name)
        except PipelineError as exc:
            raise PipelineError(f"{source}: {exc}") from None
    return params


def _read_yaml(text: str) -> Any:
    """YAML read as DVC reads params.yaml (YAML 1.2, ruamel): `1e-5`, which DVC writes for `-S lr=0.00001`, is a
    number, where a YAML 1.1 reader such as PyYAML would see a string."""
    return YAML(typ="safe", pure=True).load(text)


def _apply_override(raw: dict[str, Any], item: str) -> None:
    """Set one `key=value`; `+key=value`, the form DVC needs to add a key a block lacks, works the same here."""
    key, sep, value = item.partition("=")
    key = key.removeprefix("+")
    if not sep or not key:
        raise PipelineError(f"override {item!r}: expected key=value, for example aug.rotation=20")
    node = raw
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise PipelineError(f"override {item!r}: {part!r} is not a block of params")
    try:
        node[leaf] = _read_yaml(value)
    except YAMLError as exc:
        raise PipelineError(f"override {item!r}: the value is not valid YAML ({exc.__class__.__name__})") from None


def _cross_check(params: Params) -> list[str]:
    problems = []
    datasets = params.data.names()
    for block in ("split", "preprocess"):
        have = getattr(params, block).names()
        problems += [f"{block}.{name}: missing; every dataset under `data` needs one" for name in datasets if name not in have]
        problems += [f"{block}.{name}: no such dataset under `data`" for name in have if name not in datasets]
    for name, model in params.models.items():
        if model.dataset not in datasets:
            problems.append(f"models.{name}.dataset: {model.dataset!r} is not a dataset under `data` ({', '.join(datasets)})")
        if model.arch not in ARCH_ARGS:
            problems.append(f"models.{name}.arch: unknown architecture {model.arch!r}; known: {', '.join(ARCH_ARGS)}")
        if name in type(params.data).model_fields:
            problems.append(f"models.{name}: a model may not share its name with a dataset")
    return problems


def _resolve_model(params: Params, name: str) -> ModelConfig:
    block = params.models[name]
    extra = dict(block.model_extra or {})
    train_keys = {key: extra.pop(key) for key in list(extra) if key in TrainParams.model_fields}
    prefix = f"models.{name}"
    train = _validated(TrainParams, params.train.model_dump() | train_keys, prefix)
    aug = _validated(AugParams, params.aug.model_dump() | block.aug, f"{prefix}.aug")
    block_keys = (*ModelParams.model_fields, *TrainParams.model_fields)
    arch_args = _validated(ARCH_ARGS[block.arch], extra, prefix, also_known=block_keys)
    if train.data_on_device:
        _check_device_aug(aug, prefix)
    return ModelConfig(name=name, dataset=block.dataset, arch=block.arch, arch_args=arch_args, train=train, aug=aug)


def unbatched_aug(aug: AugParams) -> list[str]:
    """The `aug.*` keys that are on and have no batched tensor version (all but crop_padding, shift, the flips)."""
    return [f"aug.{key}" for key, value in aug.model_dump().items() if value and key not in DEVICE_AUG_KEYS]


def _check_device_aug(aug: AugParams, prefix: str) -> None:
    """A split kept on the device is augmented there, with pixel moves only."""
    off = unbatched_aug(aug)
    if off:
        raise PipelineError(
            f"{prefix}: data_on_device augments on the device, with crop_padding, shift and flips only, but "
            f"{', '.join(off)} is on; set it to 0 or data_on_device to false"
        )


def _validated(kind: type[BlockT], values: dict[str, Any], prefix: str, also_known: tuple[str, ...] = ()) -> BlockT:
    try:
        return kind.model_validate(values)
    except ValidationError as exc:
        raise PipelineError(_format_errors(exc, prefix, kind, also_known)) from None


def _format_errors(
    exc: ValidationError, prefix: str = "", root: type[BaseModel] = Params, also_known: tuple[str, ...] = ()
) -> str:
    lines = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"] if not _is_union_branch(part)]
        key = ".".join(filter(None, [prefix, *loc]))
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key" + _suggestion([*_known_keys(root, loc[:-1]), *also_known], loc[-1])
        elif "input" in error and error["type"] != "missing":
            message += f" (got {error['input']!r})"
        lines.append(f"{key}: {message}")
    return "; ".join(dict.fromkeys(lines))


def _is_union_branch(part: Any) -> bool:
    """Pydantic names the union member an error came from; the user's key does not include it."""
    return part in UNION_TAGS


def _suggestion(known: list[str], key: str) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f"; did you mean {close[0]!r}?" if close else (f"; valid keys: {', '.join(known)}" if known else "")


def _known_keys(root: type[BaseModel], parents: list[str]) -> list[str]:
    """The keys a block accepts, found by walking the params schema along `parents`."""
    kind: Any = root
    for part in parents:
        kind = _without_none(kind)
        if isinstance(kind, type) and issubclass(kind, BaseModel) and part in kind.model_fields:
            kind = kind.model_fields[part].annotation
        elif get_origin(kind) is dict:
            kind = get_args(kind)[1]
        else:
            return []
    kind = _without_none(kind)
    return list(kind.model_fields) if isinstance(kind, type) and issubclass(kind, BaseModel) else []


def _without_none(kind: Any) -> Any:
    """`X | None` to `X`; anything else unchanged."""
    if get_origin(kind) in (Union, types.UnionType):
        members = [arg for arg in get_args(kind) if arg is not type(None)]
        return members[0] if len(members) == 1 else kind
    return kind
