"""What preprocess did to every image a model was trained on, as the model file and an ONNX export record it, so
that a new image can be made into exactly the input training saw. Imports no torch: the ONNX backend reads it too.

`mean` and `std` are those of preprocess's meta.json: per channel, on the [0, 1] scale the models see. A model input
is the uint8 image (size x size, gray or RGB, made square by `resize`) divided by 255 and, when `normalize`, minus
`mean` and over `std`, channel by channel (`pipeline.core.runtime.model_input`).
"""

import json
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from pipeline.core.errors import PipelineError

COLORS = ("gray", "rgb")
RESIZES = ("squash", "crop", "pad")


@dataclass(frozen=True)
class Preprocessing:
    """The size, colour, resize policy and normalisation of training's images, and the class names in label order."""

    size: int
    color: str | None  # "gray" | "rgb"; None for a table's feature rows
    resize: str | None  # "squash" | "crop" | "pad"; None for a table
    normalize: bool
    mean: list[float]  # per channel (a table: per feature), on the [0, 1] scale
    std: list[float]
    classes: list[str]

    def __post_init__(self) -> None:
        problem = _value_problem(self)
        if problem:
            raise ValueError(problem)

    @property
    def channels(self) -> int:
        """1 for gray images, 3 for RGB; a table's number of features."""
        return len(self.mean) if self.color is None else 1 if self.color == "gray" else 3

    def to_dict(self) -> dict:
        """The fields as plain JSON-ready data (what the model file and the ONNX metadata hold)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> "Preprocessing":
        """The preprocessing `d` describes (other keys are ignored). A missing key, a value of the wrong type (`"32"`
        for a size) or out of range is a PipelineError listing each problem by key; callers name the file."""
        try:
            text = json.dumps(d, allow_nan=False)
        except (TypeError, ValueError):
            raise PipelineError("preprocessing: not plain data (numbers, strings, lists)") from None
        try:
            return _ADAPTER.validate_json(text, strict=True)
        except ValidationError as exc:
            raise PipelineError(problems(exc, "preprocessing")) from None


_ADAPTER = TypeAdapter(Preprocessing)


def _value_problem(p: Preprocessing) -> str:
    """What is wrong with well-typed values, "" if nothing."""
    if p.size < 1:
        return f"size: {p.size} is not a positive number of pixels"
    if p.color is None and p.resize is not None:
        return f"resize: {p.resize!r} for a table (color null); a table is not resized"
    if p.color is not None and p.color not in COLORS:
        return f"color: {p.color!r} is not {' or '.join(COLORS)}"
    if p.color is not None and p.resize not in RESIZES:
        return f"resize: {p.resize!r} is not {', '.join(RESIZES)}"
    if not len(p.mean) == len(p.std) == p.channels or not p.mean:
        return f"mean and std: {len(p.mean)} and {len(p.std)} values for {p.color or 'table'} inputs ({p.channels} expected)"
    if min(p.std) <= 0:
        return f"std: {p.std} has a value that is not positive"
    if len(p.classes) < 2 or len(set(p.classes)) < len(p.classes):
        return f"classes: {p.classes} are not two or more distinct names"
    return ""


def problems(exc: ValidationError, prefix: str) -> str:
    """A pydantic validation error as one line: each problem after its dotted key under `prefix`."""
    lines = [
        f"{'.'.join(str(part) for part in (prefix, *error['loc']) if part != '')}: "
        f"{error['msg'].removeprefix('Value error, ')}"
        for error in exc.errors()
    ]
    return "; ".join(dict.fromkeys(lines))
