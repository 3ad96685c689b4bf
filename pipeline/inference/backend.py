"""What every way of running a trained model shares: the preprocessing it expects, and class probabilities from
preprocessed inputs. No torch here: a backend that does not need it (ONNX Runtime) must not load it."""

from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Preprocessing:
    """How raw images become a model's input, as the preprocess stage made its training data: a `size` x `size`
    square (`resize`: squash, crop or pad) in `color` (gray or rgb), uint8; then, inside the model, scaled to [0, 1]
    and, if `normalize`, standardised per channel with `mean` and `std` (on the [0, 1] scale). A table model's inputs
    are its feature rows (`color` and `resize` None, `size` 1), standardised per feature. `classes` names the
    outputs' columns."""

    size: int
    color: str | None  # gray | rgb; None for a table
    resize: str | None  # squash | crop | pad; None for a table
    normalize: bool
    mean: list[float]  # per channel (a table: per feature), on the [0, 1] scale
    std: list[float]
    classes: list[str]

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain JSON-ready data."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Preprocessing":
        """The inverse of `to_dict` (extra keys are ignored)."""
        return cls(
            size=int(data["size"]),
            color=data["color"],
            resize=data["resize"],
            normalize=bool(data["normalize"]),
            mean=[float(value) for value in data["mean"]],
            std=[float(value) for value in data["std"]],
            classes=[str(name) for name in data["classes"]],
        )


@runtime_checkable
class Backend(Protocol):
    """A trained model ready to predict: its preprocessing, and class probabilities (N, classes) for inputs
    preprocessed as it says (uint8 images (N, size, size, channels), or a table's float feature rows)."""

    preprocessing: Preprocessing

    def probabilities(self, images: np.ndarray) -> np.ndarray: ...
