"""Atomic outputs: a result appears whole under its final name, or not at all."""

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary sibling of `target` to write to; it replaces `target` only if the block succeeds.

    Works for files and folders alike. A crash or an exception leaves the previous `target` (if any) intact.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    staged = tmp / target.name
    try:
        yield staged
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(staged, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text(target: Path, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def write_json(target: Path, data: Any) -> None:
    """Write a JSON file atomically, keys in a stable order so equal data gives equal bytes."""
    write_text(target, json.dumps(data, indent=2, sort_keys=True) + "\n")
