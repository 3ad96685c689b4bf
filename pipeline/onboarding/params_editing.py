"""params.yaml edited in place: read as a round-trip document (comments, order and formatting kept), entries
appended where they belong, and written back atomically once the result validates. `pipeline inspect --write` adds a
dataset's blocks with it, `pipeline lr-find --apply` a model's `lr`."""

import copy
import io
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML, YAMLError
from ruamel.yaml.comments import CommentedMap

from pipeline.config.overrides import read_yaml
from pipeline.config.params import parse_params
from pipeline.core.atomic import write_text
from pipeline.core.errors import PipelineError

COMMENT_SLOT = 2  # where ruamel keeps the comment that follows a mapping value



def load_document(params_file: Path) -> CommentedMap:
    """`params_file` as a round-trip document (comments, order and formatting kept); an error if it is missing,
    not YAML or not a mapping."""
    try:
        document = round_trip_yaml().load(params_file.read_text())
    except FileNotFoundError:
        raise PipelineError(f"{params_file} does not exist; run from the repository root or give --params") from None
    except YAMLError as exc:
        raise PipelineError(f"{params_file} is not valid YAML ({exc.__class__.__name__}); fix it first") from None
    if not isinstance(document, CommentedMap):
        raise PipelineError(f"{params_file} does not hold a mapping of params blocks; fix it first")
    return document


def save_document(params_file: Path, document: CommentedMap, refused: str) -> None:
    """Replace `params_file` atomically with `document`, once it validates (`parse_params`); else an error that
    starts with `refused` (the option, and that nothing was written)."""
    text = io.StringIO()
    round_trip_yaml().dump(document, text)
    try:
        parse_params(read_yaml(text.getvalue()) or {}, source=str(params_file))
    except PipelineError as exc:
        raise PipelineError(f"{refused}, the result would not validate: {exc}") from None
    write_text(params_file, text.getvalue())


def round_trip_yaml() -> YAML:
    """ruamel in round-trip mode, writing nulls as `null` and long lines unwrapped, as params.yaml has them."""
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.representer.add_representer(
        type(None), lambda representer, _: representer.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    return yaml


def append_entry(mapping: CommentedMap, key: str, value: Any) -> None:
    """Set `key` (at the end of `mapping` if new), moving the comment that followed the entry before it (the next
    block's heading, which ruamel keeps with that entry; or with `key` itself if it was null) after the new value."""
    before = (mapping, key) if key in mapping else _last_entry(mapping)
    mapping[key] = value
    tokens = before[0].ca.items.get(before[1]) if before else None
    after = (_last_entry(value) if isinstance(value, CommentedMap) else None) or (mapping, key)
    if tokens and len(tokens) > COMMENT_SLOT and tokens[COMMENT_SLOT] is not None and after != before:
        token = tokens[COMMENT_SLOT]
        moved = copy.copy(token)
        same_line, _, rest = token.value.partition("\n")
        if same_line.strip():  # an end-of-line comment (`epochs: 2  # short`) stays on its line; the rest moves
            token.value, moved.value = same_line + "\n", "\n" + rest
        else:
            tokens[COMMENT_SLOT] = None
        after[0].ca.items.setdefault(after[1], [None, None, None, None])[COMMENT_SLOT] = moved


def _last_entry(mapping: CommentedMap) -> tuple[CommentedMap, str] | None:
    """The innermost mapping and key that end `mapping` (where a trailing comment is kept); None if it is empty."""
    if not mapping:
        return None
    last = list(mapping)[-1]
    inner = mapping[last]
    return _last_entry(inner) if isinstance(inner, CommentedMap) and inner else (mapping, last)

