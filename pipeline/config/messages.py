"""Validation errors as one line a user can act on: the dotted key, what is wrong, and the closest valid key."""

import difflib
import types
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from pipeline.config.base import RUN_CACHE_IGNORED, BlockT
from pipeline.config.training import UNION_TAGS
from pipeline.core.errors import PipelineError


def validated(kind: type[BlockT], values: dict[str, Any], prefix: str, also_known: tuple[str, ...] = ()) -> BlockT:
    """`values` as a `kind` block, or an error naming the key (`prefix.key`) of each problem."""
    for old, new in kind.renamed.items():
        if isinstance(values, dict) and old in values:
            raise PipelineError(renamed_message(f"{prefix}.{old}", f"{prefix}.{new}"))
    try:
        return kind.model_validate(values)
    except ValidationError as exc:
        raise PipelineError(format_errors(exc, prefix, kind, also_known)) from None


def renamed_message(old: str, new: str) -> str:
    """The refusal of a key that has a new name, saying why when the old one is a name DVC's run cache ignores."""
    leaf = old.rsplit(".", 1)[-1]
    why = (
        f" (DVC's run cache leaves keys named {leaf!r} out of a stage's hash, so a change to it would be ignored)"
        if leaf in RUN_CACHE_IGNORED else ""
    )
    return f"{old}: renamed {new.rsplit('.', 1)[-1]}{why}; set {new} instead"


def format_errors(
    exc: ValidationError, prefix: str, root: type[BaseModel], also_known: tuple[str, ...] = ()
) -> str:
    lines = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"] if not _is_union_branch(part)]
        key = ".".join(filter(None, [prefix, *loc]))
        message = error["msg"]
        renamed = getattr(_block_at(root, loc[:-1]), "renamed", {}) if loc else {}
        if error["type"] == "extra_forbidden" and loc[-1] in renamed:
            lines.append(renamed_message(key, f"{key.rsplit('.', 1)[0]}.{renamed[loc[-1]]}"))
            continue
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
    kind = _block_at(root, parents)
    return list(kind.model_fields) if kind is not None else []


def _block_at(root: type[BaseModel], parents: list[str]) -> type[BaseModel] | None:
    """The block class at `parents` in the params schema; None where the path leads to no single block."""
    kind: Any = root
    for part in parents:
        kind = _without_none(kind)
        if isinstance(kind, type) and issubclass(kind, BaseModel) and part in kind.model_fields:
            kind = kind.model_fields[part].annotation
        elif get_origin(kind) is dict:
            kind = get_args(kind)[1]
        else:
            return None
    kind = _without_none(kind)
    return kind if isinstance(kind, type) and issubclass(kind, BaseModel) else None


def _without_none(kind: Any) -> Any:
    """`X | None` to `X`; anything else unchanged."""
    if get_origin(kind) in (Union, types.UnionType):
        members = [arg for arg in get_args(kind) if arg is not type(None)]
        return members[0] if len(members) == 1 else kind
    return kind
