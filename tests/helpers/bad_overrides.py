"""Bad `-S key=value` overrides generated from the params schema: for every key of every block of the tiny params, a
value of the wrong type, a value past each bound the field has, a misspelt key per block, and names that are not
there (a dataset, a model, an architecture). Each is a (override, the key its error must name) pair."""

import types
from collections.abc import Iterator
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from pipeline.config.archs import ARCH_ARGS
from pipeline.config.audit import AuditParams
from pipeline.config.datasets import PreprocessParams, SplitParams, data_block
from pipeline.config.evaluation import EvaluateParams
from pipeline.config.params import ModelParams, Params
from pipeline.config.training import AugParams, TrainParams

DATASET, MODEL = "catsdogs", "catsdogs_cnn"  # the tiny params' (tests/helpers/params.py TINY)
BadOverride = tuple[str, str]


def blocks() -> dict[str, type[BaseModel]]:
    """Each block of the tiny params by its key prefix, with its schema (a model block is its own keys, the
    `train.*` keys it may override and its architecture's args)."""
    return {
        "": Params,
        f"data.{DATASET}": data_block(DATASET, {}),
        f"split.{DATASET}": SplitParams,
        f"preprocess.{DATASET}": PreprocessParams,
        "aug": AugParams,
        "train": TrainParams,
        "evaluate": EvaluateParams,
        f"models.{MODEL}": ModelParams,
        f"models.{MODEL}.": TrainParams,  # the same prefix: a model block overrides train keys
        f"models.{MODEL}..": ARCH_ARGS[MODEL],
        f"audit.{DATASET}": AuditParams,
    }


def bad_overrides() -> list[BadOverride]:
    """Every generated bad override with the key its error must name."""
    cases: list[BadOverride] = []
    for prefix, block in blocks().items():
        prefix = prefix.rstrip(".")
        scalar = {name: field for name, field in block.model_fields.items() if not _is_block(field.annotation)}
        for name, field in scalar.items():
            key = f"{prefix}.{name}".lstrip(".")
            cases.append((f"{key}={wrong_type(field.annotation)}", key))
            cases += [(f"{key}={value}", key) for value in out_of_range(field)]
        first = next(iter(scalar))
        misspelt = f"{prefix}.{first[:-1]}".lstrip(".")
        cases.append((f"{misspelt}=1", misspelt))
    return list(dict.fromkeys(cases)) + unknown_names()


def unknown_names() -> list[BadOverride]:
    """Names that are not there: a model's dataset and architecture, a block of a dataset or model not declared."""
    return [
        (f"models.{MODEL}.dataset=nope", f"models.{MODEL}.dataset"),
        (f"models.{MODEL}.arch=nope", f"models.{MODEL}.arch"),
        (f"audit.{DATASET}.model=nope", f"audit.{DATASET}.model"),
        ("split.nope.train=5", "split.nope"),
        ("preprocess.nope.image_size=32", "preprocess.nope"),
        ("audit.nope.folds=3", "audit.nope"),
        ("models.nope.epochs=3", "models.nope"),
    ]


def wrong_type(annotation: Any) -> str:
    """A value (as YAML) that the annotation's type refuses: a mapping where text is allowed, else text."""
    return "{a: 1}" if str in _members(annotation) else "abc"


def out_of_range(field: FieldInfo) -> Iterator[str]:
    """A value past each bound of the field (a number below `ge`/`gt`, above `le`/`lt`), as YAML."""
    for bound in _bounds(field):
        if isinstance(bound, Ge | Gt):
            yield str((bound.ge if isinstance(bound, Ge) else bound.gt) - 1)
        elif isinstance(bound, Le | Lt):
            yield str((bound.le if isinstance(bound, Le) else bound.lt) + 1)


def _bounds(field: FieldInfo) -> list[Any]:
    """The bounds on the field's own value: its metadata's, or (for `X | None`) those of X."""
    found = [item for item in field.metadata if isinstance(item, Ge | Gt | Le | Lt)]
    for member in _union_members(field.annotation):
        if get_origin(member) is Annotated:
            for extra in get_args(member)[1:]:
                inner = extra.metadata if isinstance(extra, FieldInfo) else [extra]
                found += [item for item in inner if isinstance(item, Ge | Gt | Le | Lt)]
    return found


def _members(annotation: Any) -> set[Any]:
    """The plain types an annotation admits at its top level (Literal's values as their types)."""
    found = set()
    for member in _union_members(annotation):
        if get_origin(member) is Annotated:
            found |= _members(get_args(member)[0])
        elif get_origin(member) is Literal:
            found |= {type(value) for value in get_args(member)}
        else:
            found.add(get_origin(member) or member)
    return found


def _union_members(annotation: Any) -> list[Any]:
    if get_origin(annotation) in (Union, types.UnionType):
        return [member for arg in get_args(annotation) for member in _union_members(arg)]
    return [annotation]


def _is_block(annotation: Any) -> bool:
    """A nested block or a mapping of blocks (`aug`, `data`, ...): overridden key by key, in its own block."""
    kinds = [get_args(annotation)[1] if get_origin(annotation) is dict else annotation]
    return any(isinstance(kind, type) and issubclass(kind, BaseModel) for kind in kinds + _union_members(kinds[0]))
