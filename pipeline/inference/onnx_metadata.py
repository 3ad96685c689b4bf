"""What an exported ONNX file states about itself in its metadata (`metadata_props`), so that the file alone is
enough to use the model: the preprocessing its inputs need, the class names of its outputs, and where it came from.

Every value is a JSON text (`"gray"`, `80`, `["cat", "dog"]`, `null`), so that any language reads it back the same.
`format_version` numbers this layout; a reader refuses a file of a newer layout than it knows. No torch here.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.core.errors import PipelineError
from pipeline.inference.backend import Preprocessing

FORMAT_VERSION = 1
# The graph's output: class probabilities (N, classes).
OUTPUT = "probabilities"
FORMAT_KEY = "format_version"
# The keys besides the preprocessing's own (size, color, resize, normalize, mean, std, classes).
ABOUT = ("model", "arch", "dataset", "kind", "features", "opset")


@dataclass(frozen=True)
class ExportInfo:
    """An exported model's metadata: its preprocessing, the model it was exported from (name, architecture,
    dataset), its inputs' `kind` (`images`: uint8 (N, size, size, channels); `table`: float32 (N, features), named
    by `features`), the ONNX opset the graph uses, for a timm backbone its own input size, mean and std
    (`backbone`, an entry only then), and the calibration's `temperature` the graph divides the logits by (already
    applied: stated so that a reader knows the probabilities are calibrated; a file without the entry had none)."""

    preprocessing: Preprocessing
    model: str
    arch: str
    dataset: str
    kind: str
    features: tuple[str, ...]
    opset: int
    backbone: dict[str, list[float]] | None = None
    temperature: float = 1.0

    def props(self) -> dict[str, str]:
        """The metadata_props entries, each value JSON."""
        values: dict[str, Any] = {
            FORMAT_KEY: FORMAT_VERSION,
            **self.preprocessing.to_dict(),
            "model": self.model,
            "arch": self.arch,
            "dataset": self.dataset,
            "kind": self.kind,
            "features": list(self.features),
            "opset": self.opset,
            "temperature": self.temperature,
            **({} if self.backbone is None else {"backbone": self.backbone}),
        }
        return {key: json.dumps(value) for key, value in values.items()}

    @classmethod
    def from_props(cls, props: Mapping[str, str], source: Path) -> "ExportInfo":
        """Read the metadata back; an error naming `source` if it lacks any entry, or is of a newer layout."""
        required = (FORMAT_KEY, *Preprocessing.__dataclass_fields__, *ABOUT)
        missing = [key for key in required if key not in props]
        if missing:
            raise PipelineError(
                f"{source}: not an ONNX file exported by this pipeline (its metadata has no {', '.join(missing)}, "
                "so the preprocessing its inputs need is unknown); export the model with "
                "`dvc repro export@<model>` (or `pipeline export <model>`)"
            )
        try:
            values = {key: json.loads(props[key]) for key in required}
        except json.JSONDecodeError as exc:
            raise PipelineError(
                f"{source}: unreadable metadata ({exc}); export the model again: `dvc repro export@{source.stem}`"
            ) from None
        if values[FORMAT_KEY] > FORMAT_VERSION:
            raise PipelineError(
                f"{source}: metadata format {values[FORMAT_KEY]}, newer than this pipeline reads ({FORMAT_VERSION}); "
                "update the pipeline"
            )
        return cls(
            preprocessing=Preprocessing.from_dict(values),
            model=values["model"],
            arch=values["arch"],
            dataset=values["dataset"],
            kind=values["kind"],
            features=tuple(values["features"]),
            opset=int(values["opset"]),
            backbone=json.loads(props["backbone"]) if "backbone" in props else None,
            temperature=float(json.loads(props.get("temperature", "1"))),
        )
