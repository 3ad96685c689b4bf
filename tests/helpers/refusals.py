"""Refusals that must leave the disk as it was."""

from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.core.errors import PipelineError


def refusal_writing_nothing_outside(root: Path, inside: Path, action: Callable[[], object]) -> str:
    """The message of the PipelineError that `action` must raise, once checked that no file or folder under `root`
    but outside `inside` was added, removed or changed."""
    before = files_outside(root, inside)
    with pytest.raises(PipelineError) as error:
        action()
    assert files_outside(root, inside) == before
    return str(error.value)


def files_outside(root: Path, inside: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under `root` but not under `inside`, by path."""
    return {
        str(path): path.read_bytes() if path.is_file() else None
        for path in root.rglob("*")
        if not path.is_relative_to(inside)
    }
