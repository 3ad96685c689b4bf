"""Markdown tables, for the pages the pipeline writes: the experiments report and the model card."""

import json
from typing import Any


def cell(value: Any) -> str:
    """A value as table text: a string as it is, anything else as JSON (`true`, `[32, 64]`, `null`)."""
    return value if isinstance(value, str) else json.dumps(value)


def row(cells: list[str]) -> str:
    """One table row; a `|` inside a cell is escaped."""
    return "| " + " | ".join(text.replace("|", "\\|") for text in cells) + " |"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A whole table's lines: the header, the rule under it, a line per row."""
    return [row(header), row(["---"] * len(header)), *(row(cells) for cells in rows)]
