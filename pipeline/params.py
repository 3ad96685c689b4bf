"""Typed, validated params.

params.yaml is read once into a `Params` object; every stage takes the parts it needs. Every problem is
reported with the dotted key it concerns (`aug.hflip`, `models.catsdogs_cnn.epochs`) before any work starts.
"""

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.datasets import DATASETS
from pipeline.errors import PipelineError

Probability = Annotated[float, Field(ge=0, le=1)]
BlockT = TypeVar("BlockT", bound="Block")


class Block(BaseModel):
    """A params block: unknown keys are errors, values are immutable once read."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DataParams(Block):
    source: Literal["sample", "kaggle", "local"] = "sample"
    path: str | None = None
    sample_per_class: int = Field(2000, ge=1)

    @model_validator(mode="after")
    def _local_needs_path(self) -> "DataParams":
        if self.source == "local" and not self.path:
            raise ValueError("source 'local' needs 'path': a train.zip, the competition zip, or an image folder")
        return self


class SplitParams(Block):
    train: int = Field(1000, ge=1)
    val: int = Field(500, ge=1)
    test: int = Field(500, ge=1)


class PreprocessParams(Block):
    size: int = Field(80, ge=8, le=1024)
    color: Literal["gray", "rgb"] = "gray"


class AugParams(Block):
    rotation: float = Field(0, ge=0, le=180)
    shift: float = Field(0, ge=0, le=0.5)
    zoom: float = Field(0, ge=0, lt=1)
    shear: float = Field(0, ge=0, lt=90)
    hflip: Probability = 0
    brightness: float = Field(0, ge=0, le=1)


class TrainParams(Block):
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(32, ge=1)
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(0, ge=0)
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")


class CatsDogsCnnArgs(Block):
    """The classic dogs-vs-cats convnet: three conv-maxpool-dropout blocks, a dense layer, one sigmoid output."""

    dropout: tuple[Probability, Probability, Probability] = (0.25, 0.25, 0.5)
    dense: int = Field(32, ge=1)


ARCH_ARGS: dict[str, type[Block]] = {"catsdogs_cnn": CatsDogsCnnArgs}


class ModelParams(BaseModel):
    """A model block: its dataset and architecture, any `train.*` key to override, and the architecture's args."""

    model_config = ConfigDict(extra="allow", frozen=True)
    dataset: str
    arch: str
    aug: dict[str, Any] = Field(default_factory=dict)


class Params(Block):
    seed: int = Field(42, ge=0)
    data: dict[str, DataParams]
    split: dict[str, SplitParams]
    preprocess: dict[str, PreprocessParams]
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
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise PipelineError(f"{path}: not valid YAML: {exc}") from None
    for item in overrides or []:
        _apply_override(raw, item)
    return parse_params(raw, source=str(path))


def parse_params(raw: dict[str, Any], source: str = "params.yaml") -> Params:
    """Validate a params mapping; every problem is reported with its dotted key."""
    try:
        params = Params.model_validate(raw)
    except ValidationError as exc:
        raise PipelineError(_format_errors(source, exc)) from None
    problems = _cross_check(params)
    if problems:
        raise PipelineError(f"{source}: " + "; ".join(problems))
    for name in params.models:
        params.model(name)
    return params


def _apply_override(raw: dict[str, Any], item: str) -> None:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise PipelineError(f"override {item!r}: expected key=value, for example aug.rotation=20")
    node = raw
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise PipelineError(f"override {item!r}: {part!r} is not a block of params")
    node[leaf] = yaml.safe_load(value)


def _cross_check(params: Params) -> list[str]:
    problems = []
    for block in ("data", "split", "preprocess"):
        for name in getattr(params, block):
            if name not in DATASETS:
                problems.append(f"{block}.{name}: unknown dataset; known: {', '.join(DATASETS)}")
        for name in set(params.data) - set(getattr(params, block)):
            problems.append(f"{block}.{name}: missing; every dataset under `data` needs a `{block}` block")
    for name, model in params.models.items():
        if model.dataset not in params.data:
            problems.append(f"models.{name}.dataset: {model.dataset!r} is not a dataset under `data`")
        if model.arch not in ARCH_ARGS:
            problems.append(f"models.{name}.arch: unknown architecture {model.arch!r}; known: {', '.join(ARCH_ARGS)}")
        if name in params.data:
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
    return ModelConfig(name=name, dataset=block.dataset, arch=block.arch, arch_args=arch_args, train=train, aug=aug)


def _validated(kind: type[BlockT], values: dict[str, Any], prefix: str, also_known: tuple[str, ...] = ()) -> BlockT:
    try:
        return kind.model_validate(values)
    except ValidationError as exc:
        raise PipelineError(_format_errors("params.yaml", exc, prefix, kind, also_known)) from None


def _format_errors(
    source: str,
    exc: ValidationError,
    prefix: str = "",
    root: type[BaseModel] = Params,
    also_known: tuple[str, ...] = (),
) -> str:
    lines = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        key = ".".join(filter(None, [prefix, *loc]))
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key" + _suggestion([*_known_keys(root, loc[:-1]), *also_known], loc[-1])
        elif "input" in error and error["type"] != "missing":
            message += f" (got {error['input']!r})"
        lines.append(f"{key}: {message}")
    return f"{source}: " + "; ".join(lines)


def _suggestion(known: list[str], key: str) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f"; did you mean {close[0]!r}?" if close else (f"; valid keys: {', '.join(known)}" if known else "")


def _known_keys(root: type[BaseModel], parents: list[str]) -> list[str]:
    """The keys a block accepts, found by walking the params schema along `parents`."""
    kind: Any = root
    for part in parents:
        if isinstance(kind, type) and issubclass(kind, BaseModel) and part in kind.model_fields:
            kind = kind.model_fields[part].annotation
        elif get_origin(kind) is dict:
            kind = get_args(kind)[1]
        else:
            return []
    return list(kind.model_fields) if isinstance(kind, type) and issubclass(kind, BaseModel) else []
