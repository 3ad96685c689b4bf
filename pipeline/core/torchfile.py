"""Files written by `torch.save` (models, checkpoints), read back safely: tensors and plain containers only."""

import re
from pathlib import Path
from typing import Any

import torch

from pipeline.core.errors import PipelineError

CRAFTED = re.compile(r"Unsupported global: GLOBAL (\S+)")  # what torch's weights-only unpickler refused to call


def read_torch_file(path: Path, what: str) -> dict[str, Any]:
    """A dict that `torch.save` wrote, loaded with `weights_only`: tensors and plain containers only, so a crafted
    file cannot run code. A truncated, corrupt or crafted file is a PipelineError naming it, in one line."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - whatever the damage, the user's remedy is the same
        raise PipelineError(f"{path}: {_unreadable(exc, what)}") from None
    if not isinstance(saved, dict):
        raise PipelineError(f"{path}: not a readable {what} (holds a {type(saved).__name__}, not a dict)")
    return saved


def _unreadable(exc: Exception, what: str) -> str:
    """Why torch could not load a file, in one line: torch's own messages run over many."""
    crafted = CRAFTED.search(str(exc))
    if crafted:
        return (
            f"refused to load this {what}: it asks to run {crafted[1]}, not just to rebuild tensors and plain data "
            "(a crafted file runs code this way)"
        )
    first = next(iter(str(exc).strip().splitlines()), "").split(". ")[0]
    return f"not a readable {what} ({exc.__class__.__name__}: {first})"
