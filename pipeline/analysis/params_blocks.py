"""The params blocks that declare a user's dataset, as `pipeline inspect` suggests them: where the images are
(`data`), how they are stored (`preprocess`: a side from their median size, gray if all are gray) and a first model
(`models`). `write_blocks` adds them to params.yaml in place, keeping its comments and formatting (ruamel's
round-trip mode)."""

import io
import re
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML, YAMLError
from ruamel.yaml.comments import CommentedMap

from pipeline.core.atomic import atomic_path
from pipeline.core.errors import PipelineError

SIDES = (32, 48, 64, 96, 128)  # the largest not above the images' median side; 128 is plenty for a small CNN
ARCH = "catsdogs_cnn"
NAME = re.compile(r"[a-z][a-z0-9_]*")
COMMENT_SLOT = 2  # where ruamel keeps the comment that follows a mapping value


def dataset_name(path: Path) -> str:
    """A params key for the dataset at `path`: its name less archive suffixes, lower-case, `_` for other signs."""
    stem = re.sub(r"(\.tar)?\.(zip|tar|tgz|gz|bz2|xz|tbz2|txz)$", "", Path(path).name.lower())
    name = re.sub(r"[^a-z0-9]+", "_", stem).strip("_") or "mydata"
    return name if name[0].isalpha() else f"data_{name}"


def suggested_side(median_side: int) -> int:
    """The preprocess size for images whose median shorter side is `median_side`: the largest of `SIDES` not above
    it (the smallest for tiny images)."""
    return max([side for side in SIDES if side <= median_side], default=SIDES[0])


def blocks(name: str, path: Path, median_side: int, color: str) -> dict[str, dict[str, dict[str, Any]]]:
    """The `data`, `preprocess` and `models` blocks declaring the dataset at `path` as `name`."""
    return {
        "data": {name: {"source": "local", "path": str(Path(path).resolve())}},
        "preprocess": {name: {"size": suggested_side(median_side), "color": color}},
        "models": {f"{name}_cnn": {"dataset": name, "arch": ARCH}},
    }


def blocks_text(name: str, path: Path, median_side: int, color: str) -> str:
    """The blocks as YAML to paste into params.yaml."""
    text = io.StringIO()
    _yaml().dump(_commented(blocks(name, path, median_side, color)), text)
    return text.getvalue()


def check_name(params_file: Path, name: str) -> CommentedMap:
    """`params_file` as a round-trip document, once `name` is checked to be a valid dataset name that none of its
    `data`, `preprocess` and `models` blocks uses yet (an error naming the key if one does)."""
    if not NAME.fullmatch(name):
        raise PipelineError(
            f"--write {name!r}: a dataset name is lower-case letters, digits and _, starting with a letter"
        )
    try:
        document = _yaml().load(params_file.read_text())
    except FileNotFoundError:
        raise PipelineError(f"{params_file} does not exist; run from the repository root or give --params") from None
    except YAMLError as exc:
        raise PipelineError(f"{params_file} is not valid YAML ({exc.__class__.__name__}); fix it first") from None
    if not isinstance(document, CommentedMap):
        raise PipelineError(f"{params_file} does not hold a mapping of params blocks; fix it first")
    taken = [f"{block}.{entry}" for block, entry in _keys(name) if entry in (document.get(block) or {})]
    if taken:
        raise PipelineError(
            f"{params_file} already has {', '.join(taken)}; choose another name for --write, or edit the blocks there"
        )
    return document


def write_blocks(params_file: Path, name: str, path: Path, median_side: int, color: str) -> list[str]:
    """Add the blocks to `params_file`, keeping everything else as it is; returns the keys added. Refuses (naming
    the key) if any of them is already there, as `check_name` does."""
    document = check_name(params_file, name)
    for block, entries in blocks(name, path, median_side, color).items():
        if not isinstance(document.get(block), CommentedMap):
            _append(document, block, CommentedMap())
        for entry, values in entries.items():
            _append(document[block], entry, _commented(values))
    with atomic_path(params_file) as tmp:
        with tmp.open("w") as file:
            _yaml().dump(document, file)
    return [f"{block}.{entry}" for block, entry in _keys(name)]


def _keys(name: str) -> list[tuple[str, str]]:
    """The (block, entry) pairs the blocks for `name` add."""
    return [("data", name), ("preprocess", name), ("models", f"{name}_cnn")]


def _yaml() -> YAML:
    """ruamel in round-trip mode, writing nulls as `null` and long lines unwrapped, as params.yaml has them."""
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.representer.add_representer(
        type(None), lambda representer, _: representer.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    return yaml


def _commented(values: dict[str, Any]) -> CommentedMap:
    node = CommentedMap()
    for key, value in values.items():
        node[key] = _commented(value) if isinstance(value, dict) else value
    return node


def _append(mapping: CommentedMap, key: str, value: CommentedMap) -> None:
    """Add `key` at the end of `mapping`, moving the comment that followed its last entry (the next block's heading,
    which ruamel keeps with that entry) after the new one."""
    before = _last_entry(mapping)
    mapping[key] = value
    tokens = before[0].ca.items.get(before[1]) if before else None
    after = _last_entry(value) or (mapping, key)
    if tokens and len(tokens) > COMMENT_SLOT and tokens[COMMENT_SLOT] is not None:
        after[0].ca.items[after[1]] = [None, None, tokens[COMMENT_SLOT], None]
        tokens[COMMENT_SLOT] = None


def _last_entry(mapping: CommentedMap) -> tuple[CommentedMap, str] | None:
    """The innermost mapping and key that end `mapping` (where a trailing comment is kept); None if it is empty."""
    if not mapping:
        return None
    last = list(mapping)[-1]
    inner = mapping[last]
    return _last_entry(inner) if isinstance(inner, CommentedMap) and inner else (mapping, last)
