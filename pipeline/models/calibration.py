"""A model's calibration: the temperature its logits are divided by before the sigmoid or softmax (temperature
scaling, Guo et al. 2017), fitted by the evaluate stage on the validation split.

The evaluate stage writes it beside the model file, `models/<model>.calibration.json` (the model file is the train
stage's output, which no later stage rewrites); every reader of a model file (`pipeline predict`, `pipeline serve`,
the export stage) applies it. The file names the SHA-256 of the model file it was fitted to: a model trained again
since is refused until evaluate fits it again. A temperature of 1 (`evaluate.calibrate` off, or no calibration file)
leaves the probabilities as trained; so does a temperature the validation split does not show to carry over.
"""

import hashlib
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from pipeline.core.atomic import write_json
from pipeline.core.errors import PipelineError


class Calibration(BaseModel):
    """What evaluate fitted: the `temperature` the logits are divided by (1 unless `applied`), the one fitted on the
    validation split's `samples` (`fitted_temperature`), the validation images' NLL and ECE as trained and with a
    temperature fitted without them (`held_out`: `pipeline.analysis.calibration`), which decide `applied`, and the
    SHA-256 of the model file it belongs to."""

    model_config = ConfigDict(strict=True, frozen=True)

    temperature: float = Field(gt=0)
    applied: bool
    fitted_temperature: float = Field(gt=0)
    samples: int
    held_out: dict[str, float]
    model_sha256: str


class Tempered(nn.Module):
    """The model with its logits divided by the temperature, as a module: what evaluate scores, view by view under
    TTA (the torch backend and the export divide the logits themselves, the export by a buffer of its graph)."""

    def __init__(self, model: nn.Module, temperature: float) -> None:
        super().__init__()
        self.model, self.temperature = model, temperature

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.model(inputs) / self.temperature


def calibration_file(model_file: Path) -> Path:
    """Where a model file's calibration lives: `models/<model>.calibration.json` beside `models/<model>.pt`."""
    return model_file.with_suffix(".calibration.json")


def file_sha256(path: Path) -> str:
    """The file's SHA-256, hex: what ties a calibration to the model file it was fitted to."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_calibration(model_file: Path, calibration: Calibration) -> None:
    """Write the calibration beside the model file, atomically."""
    write_json(calibration_file(model_file), calibration.model_dump())


def load_calibration(model_file: Path) -> Calibration | None:
    """The model file's calibration, or None where evaluate has not written one; one fitted to another model file
    (the model trained again since), or unreadable, is an error naming the file and the stage to run."""
    file = calibration_file(model_file)
    if not file.is_file():
        return None
    rerun = f"run `dvc repro evaluate@{model_file.stem}` (or `pipeline evaluate {model_file.stem}`) to fit it again"
    try:
        calibration = Calibration.model_validate_json(file.read_text())
    except ValidationError as exc:
        raise PipelineError(f"{file}: not a calibration file ({exc.errors()[0]['msg']}); {rerun}") from None
    if calibration.model_sha256 != file_sha256(model_file):
        raise PipelineError(f"{file}: fitted to another version of {model_file} (trained again since); {rerun}")
    return calibration


def temperature_of(model_file: Path) -> float:
    """The temperature a model file's logits are divided by: its calibration's, or 1 without one."""
    calibration = load_calibration(model_file)
    return 1.0 if calibration is None else calibration.temperature
