"""Typed, validated params.

params.yaml is read once into a `Params` object; every stage takes the parts it needs. Every problem is
reported with the dotted key it concerns (`aug.hflip`, `models.catsdogs_cnn.epochs`) before any work starts.
Each dataset has its own typed blocks under `data`, `split` and `preprocess` (the last two filled with defaults when
absent); each architecture its own args.
"""

import copy
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError
from ruamel.yaml import YAMLError

from pipeline.config.archs import ARCH_ARGS
from pipeline.config.audit import AuditParams
from pipeline.config.base import RUN_CACHE_IGNORED, Block
from pipeline.config.datasets import (
    DataSource,
    PreprocessParams,
    SplitParams,
    TablePreprocess,
    data_block,
    preprocess_block,
)
from pipeline.config.evaluation import EvaluateParams
from pipeline.config.messages import format_errors, validated
from pipeline.config.overrides import apply_override, read_yaml
from pipeline.config.training import AugParams, TrainParams, unbatched_aug
from pipeline.core.errors import PipelineError


class ModelParams(BaseModel):
    """A model block: its dataset and architecture, any `train.*` key to override (and `aug.*`, `evaluate.*` in
    blocks of those names), the architecture's args, and `sample`: the same kind of keys, laid over the block only
    while the dataset's `source` is `sample` (the embedded sample's budget; the block itself is the real set-up)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    dataset: str = Field(description="The dataset it trains on: a key under `data`.")
    arch: str = Field(description="Its architecture, from the registry in pipeline/models/ (the sections below).")
    aug: dict[str, Any] = Field(default_factory=dict, description="`aug.*` keys for this model alone.")
    evaluate: dict[str, Any] = Field(default_factory=dict, description="`evaluate.*` keys for this model alone.")
    sample: dict[str, Any] = Field(
        default_factory=dict, description="Keys laid over the block only while its dataset's source is `sample`."
    )

    def with_sample_budget(self) -> "ModelParams":
        """The block with its `sample` keys laid over it (`aug` and `evaluate` merged key by key): what trains while
        its dataset's source is `sample`."""
        overlay = dict(self.sample)
        fixed = [key for key in ("dataset", "arch", "sample") if key in overlay]
        if fixed:
            raise PipelineError(
                f"sample.{fixed[0]}: the sample budget may change training and architecture keys, not {fixed[0]!r}"
            )
        merged = self.model_dump(exclude={"sample"})
        for nested in ("aug", "evaluate"):
            merged[nested] = {**merged[nested], **(overlay.pop(nested, None) or {})}
        return ModelParams.model_validate({**merged, **overlay})


class Params(Block):
    seed: int = Field(42, ge=0)
    data: dict[str, DataSource]
    split: dict[str, SplitParams]
    preprocess: dict[str, PreprocessParams | TablePreprocess]
    aug: AugParams = AugParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    models: dict[str, ModelParams]
    audit: dict[str, AuditParams] = Field(default_factory=dict)
    _raw: dict[str, Any] | None = PrivateAttr(None)  # the mapping as read, -S overrides applied

    def audit_of(self, dataset: str) -> AuditParams:
        """The dataset's audit block, its `sample` keys laid over it while its source is `sample`."""
        block = self.audit[dataset]
        if getattr(self.data[dataset], "source", None) != "sample" or not block.sample:
            return block
        return validated(AuditParams, block.model_dump(exclude={"sample"}) | block.sample, f"audit.{dataset}.sample")

    def near_duplicates(self, dataset: str) -> tuple[int, float] | None:
        """How many candidates each image's near-duplicates are looked for among and the least their aligned
        thumbnails correlate, when the dataset's audit looks for them; else None."""
        if dataset not in self.audit or not self.audit_of(dataset).near_duplicates:
            return None
        settings = self.audit_of(dataset)
        return settings.neighbours, settings.min_similarity

    def audit_model(self, dataset: str) -> "ModelConfig | None":
        """The model the audit's folds train (the block's `model`), for the audit's `epochs` (its own when null); None
        when the audit looks for no label issues."""
        settings = self.audit_of(dataset)
        if not settings.label_issues:
            return None
        config = self.model(settings.model)
        budget = config.train.model_copy(update={"epochs": settings.epochs or config.train.epochs})
        return replace(config, train=budget)

    def model(self, name: str) -> "ModelConfig":
        """The fully resolved settings of one model: its block merged over `train.*` and `aug.*`, and its `sample`
        keys over that while its dataset's source is `sample`."""
        if name not in self.models:
            raise PipelineError(f"unknown model {name!r}: params.yaml `models` has {', '.join(self.models)}")
        block, prefix = self.models[name], f"models.{name}"
        real = _resolve_model(self, name, block, prefix)  # checked whatever the source: switching it cannot fail later
        if not self.trains_on_sample(name) or not block.sample:
            return real
        try:
            budget = block.with_sample_budget()
        except PipelineError as exc:
            raise PipelineError(f"{prefix}.{exc}") from None
        return _resolve_model(self, name, budget, f"{prefix}.sample")

    def raw(self) -> dict[str, Any]:
        """The params mapping as read, `-S` overrides applied and no default filled in: what DVC compares with the
        values dvc.lock recorded. A `Params` built without `parse_params` gives the keys it was given."""
        if self._raw is None:
            return self.model_dump(mode="json", exclude_unset=True)
        return self._raw

    def trains_on_sample(self, name: str) -> bool:
        """Whether model `name` trains on an embedded sample (its dataset's `source` is `sample`), so that its
        block's `sample` budget applies."""
        return getattr(self.data[self.models[name].dataset], "source", None) == "sample"


@dataclass(frozen=True)
class ModelConfig:
    """Everything the train and evaluate stages need to know about one model, with overrides applied."""

    name: str
    dataset: str
    arch: str
    arch_args: Block
    train: TrainParams
    aug: AugParams
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)


def load_params(path: Path = Path("params.yaml"), overrides: list[str] | None = None) -> Params:
    """Read, override (`key=value`, as `dvc exp run -S`) and validate a params file."""
    if not path.is_file():
        raise PipelineError(f"{path}: params file not found; run from the repository root or pass --params")
    try:
        raw = read_yaml(path.read_text()) or {}
    except YAMLError as exc:
        raise PipelineError(f"{path}: not valid YAML: {exc}") from None
    for item in overrides or []:
        apply_override(raw, item)
    return parse_params(raw, source=str(path))


def parse_params(raw: dict[str, Any], source: str = "params.yaml") -> Params:
    """Validate a params mapping; every problem is reported with its dotted key."""
    blocks, problems = _dataset_blocks(raw)
    try:
        params = Params.model_validate({**raw, **blocks})
    except ValidationError as exc:
        problems.insert(0, format_errors(exc, "", Params))
    if problems:
        raise PipelineError(f"{source}: " + "; ".join(problems))
    problems = _cross_check(params)
    if problems:
        raise PipelineError(f"{source}: " + "; ".join(problems))
    for name in params.models:
        try:
            params.model(name)
        except PipelineError as exc:
            raise PipelineError(f"{source}: {exc}") from None
    params._raw = copy.deepcopy(raw)
    return params



def _dataset_blocks(raw: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """`data`, `split` and `preprocess` typed per dataset (a built-in name's own data block, a table's preprocess
    block), `split` and `preprocess` filled with defaults where a dataset has none; and the problems, by key."""
    data = raw.get("data")
    if not isinstance(data, dict):
        return {}, []  # Params says what `data` should be
    blocks: dict[str, dict[str, Any]] = {"data": {}, "split": {}, "preprocess": {}}
    problems = []
    for block in ("split", "preprocess"):
        given = raw.get(block) or {}
        if not isinstance(given, dict):
            problems.append(f"{block}: expected a mapping of dataset names to blocks (got {given!r})")
            continue
        problems += [f"{block}.{name}: no such dataset under `data` ({', '.join(data)})" for name in given if name not in data]
    for name, values in data.items():
        try:
            given = values or {}
            kind = data_block(name, given if isinstance(given, dict) else {})
            source = blocks["data"][name] = validated(kind, given, f"data.{name}")
            for block, kind in (("split", SplitParams), ("preprocess", preprocess_block(source))):
                given = raw.get(block) if isinstance(raw.get(block), dict) else {}
                blocks[block][name] = validated(kind, given.get(name) or {}, f"{block}.{name}")
        except PipelineError as exc:
            problems.append(str(exc))
    return blocks, problems


def _cross_check(params: Params) -> list[str]:
    problems = _ignored_names(params)
    datasets = list(params.data)
    for name, model in params.models.items():
        if model.dataset not in datasets:
            problems.append(f"models.{name}.dataset: {model.dataset!r} is not a dataset under `data` ({', '.join(datasets)})")
        if model.arch not in ARCH_ARGS:
            problems.append(f"models.{name}.arch: unknown architecture {model.arch!r}; known: {', '.join(ARCH_ARGS)}")
        if name in params.data:
            problems.append(f"models.{name}: a model may not share its name with a dataset")
    return problems + _audit_problems(params)


def _ignored_names(params: Params) -> list[str]:
    """A dataset or model named as a key DVC's run cache ignores would hide its whole block from the stages that list
    `split`, `preprocess` or `models`: refused."""
    return [
        f"{block}.{name}: DVC's run cache ignores keys named {name!r}, so changes to this block would be ignored; "
        "give it another name"
        for block, names in (("data", params.data), ("models", params.models))
        for name in names
        if name in RUN_CACHE_IGNORED
    ]


def _audit_problems(params: Params) -> list[str]:
    """An audit block must name a dataset, and a model of that dataset where its label finder needs one."""
    problems = []
    for name, block in params.audit.items():
        if name not in params.data:
            problems.append(f"audit.{name}: no such dataset under `data` ({', '.join(params.data)})")
            continue
        own = [model for model, values in params.models.items() if values.dataset == name]
        if block.model is not None and block.model not in own:
            problems.append(f"audit.{name}.model: {block.model!r} is not a model of {name!r} ({', '.join(own) or 'none'})")
        elif block.label_issues and not own:
            problems.append(f"audit.{name}.label_issues: no model under `models` trains on {name!r}; add one or set it false")
    return problems


def _resolve_model(params: Params, name: str, block: ModelParams, prefix: str) -> ModelConfig:
    extra = dict(block.model_extra or {})
    train_keys = {key: extra.pop(key) for key in list(extra) if key in TrainParams.model_fields}
    train = validated(TrainParams, params.train.model_dump() | train_keys, prefix)
    aug = validated(AugParams, params.aug.model_dump() | block.aug, f"{prefix}.aug")
    block_keys = (*ModelParams.model_fields, *TrainParams.model_fields)
    arch_args = validated(ARCH_ARGS[block.arch], extra, prefix, also_known=block_keys)
    if train.data_on_device:
        _check_device_aug(aug, prefix)
    if getattr(arch_args, "pretrained", False):
        _check_pretrained_input(params.preprocess[block.dataset], block.dataset, prefix)
    if isinstance(params.preprocess[block.dataset], TablePreprocess) and train.cutmix:
        train = _table_cutmix(train, train_keys, block.dataset, prefix)
    return ModelConfig(
        name=name, dataset=block.dataset, arch=block.arch, arch_args=arch_args, train=train, aug=aug,
        evaluate=_resolve_evaluate(params, block, prefix),
    )


def _resolve_evaluate(params: Params, block: ModelParams, prefix: str) -> EvaluateParams:
    """The model's `evaluate` block over the top-level one. Test-time augmentation flips and shifts images: the
    top-level `tta` leaves a table model at none, and a table model's own `tta` other than none is an error."""
    evaluate = validated(EvaluateParams, params.evaluate.model_dump() | block.evaluate, f"{prefix}.evaluate")
    if not isinstance(params.preprocess[block.dataset], TablePreprocess) or evaluate.tta == "none":
        return evaluate
    if "tta" in block.evaluate:
        raise PipelineError(
            f"{prefix}.evaluate.tta: test-time augmentation ({evaluate.tta!r}) flips and shifts images, but "
            f"{block.dataset!r} is a table (rows of features); remove it or set it to none"
        )
    return evaluate.model_copy(update={"tta": "none"})



def _check_pretrained_input(preprocess: PreprocessParams | TablePreprocess, dataset: str, prefix: str) -> None:
    """Published weights take RGB images: a pretrained model of gray images or of a table is refused before its
    weights stage fetches anything, naming the key to change."""
    if isinstance(preprocess, TablePreprocess):
        raise PipelineError(
            f"{prefix}.pretrained: pretrained weights take RGB images, but {dataset!r} is a table (rows of features); "
            "set pretrained: false"
        )
    if preprocess.color != "rgb":
        raise PipelineError(
            f"{prefix}.pretrained: pretrained weights take RGB images, but preprocess.{dataset}.color is "
            f"{preprocess.color}; set preprocess.{dataset}.color: rgb, or pretrained: false to train from scratch"
        )


def _table_cutmix(train: TrainParams, own: dict, dataset: str, prefix: str) -> TrainParams:
    """CutMix pastes boxes of images: the top-level `train.cutmix` leaves a table model at 0, and a table model's own
    `cutmix` is an error (as for `evaluate.tta`)."""
    if "cutmix" in own:
        raise PipelineError(
            f"{prefix}.cutmix: CutMix pastes boxes of images, but {dataset!r} is a table (rows of features); "
            "remove it or set it to 0 (mixup mixes rows)"
        )
    return train.model_copy(update={"cutmix": 0.0})


def _check_device_aug(aug: AugParams, prefix: str) -> None:
    """A split kept on the device is augmented there, with pixel moves only."""
    off = unbatched_aug(aug)
    if off:
        raise PipelineError(
            f"{prefix}: data_on_device augments on the device, with crop_padding, shift and flips only, but "
            f"{', '.join(off)} {'is' if len(off) == 1 else 'are'} on (done image by image on the host); turn "
            "them off (0, or policy none) or set data_on_device to false"
        )
