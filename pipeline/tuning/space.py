"""`pipeline tune`'s search space: a small YAML file of params keys (dotted, as `dvc exp run -S` takes them) and
their ranges, each checked against the model's params before any trial runs.

    models.cifar_cnn_bn.lr: {low: 0.0001, high: 0.01, log: true}   # log-uniform
    models.cifar_cnn_bn.label_smoothing: {low: 0.0, high: 0.2}     # uniform
    models.cifar_cnn_bn.dense: {low: 64, high: 256, int: true}     # integers (log: true too)
    models.cifar_cnn_bn.batch_size: {choices: [32, 64, 128]}       # one of (numbers, strings, booleans)

Without a file the space is the model's learning rate, log-uniform over a tenth to ten times its value.
"""

import copy
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.config.overrides import apply_override, read_yaml
from pipeline.config.params import ModelConfig, parse_params
from pipeline.core.errors import PipelineError
from pipeline.core.preprocessing import problems

Scalar = bool | int | float | str


class Dimension(BaseModel):
    """One key's range: `low` to `high` (`log`: log-uniform; `int`: integers), or one of `choices`."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = Field(False, alias="int")
    choices: list[Scalar] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_kind(self) -> "Dimension":
        if self.choices is not None:
            if self.low is not None or self.high is not None:
                raise ValueError("give either choices or low and high, not both")
            return self
        if self.low is None or self.high is None or not self.low < self.high:
            raise ValueError("give low < high (or choices)")
        if self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        return self

    def suggest(self, trial: Any, key: str) -> Scalar:
        """The trial's value of `key` (an Optuna trial's suggest_* for this kind of range)."""
        if self.choices is not None:
            return trial.suggest_categorical(key, self.choices)
        if self.integer:
            return trial.suggest_int(key, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(key, self.low, self.high, log=self.log)

    def extremes(self) -> list[Scalar]:
        """The values at the ends of the range (or every choice): what the key is checked with."""
        if self.choices is not None:
            return list(self.choices)
        return [int(self.low), int(self.high)] if self.integer else [self.low, self.high]


Space = dict[str, Dimension]


def read_space(path: Path | None, model: ModelConfig) -> Space:
    """The space of `path`, or the default one (the model's lr) without a file; a bad entry names its key."""
    if path is None:
        lr = model.train.lr
        return {f"models.{model.name}.lr": Dimension(low=lr / 10, high=lr * 10, log=True)}
    if not path.is_file():
        raise PipelineError(f"--space: {path} not found")
    entries = read_yaml(path.read_text()) or {}
    if not isinstance(entries, dict) or not entries:
        raise PipelineError(
            f"{path}: expected a mapping of params keys to ranges, e.g. models.M.lr: {{low: 1e-4, high: 1e-2, log: true}}"
        )
    space = {}
    for key, given in entries.items():
        try:
            space[str(key)] = Dimension.model_validate(given)
        except ValidationError as exc:
            raise PipelineError(f"{path}: {problems(exc, str(key))}") from None
    return space


def check_space(space: Space, raw: dict[str, Any], model: str) -> None:
    """Every key must be a valid params key at both ends of its range and must change the model's resolved
    settings (a key its `sample` block overrides on the sample, or another model's key, would not)."""
    base = parse_params(raw).model(model)
    for key, dimension in space.items():
        resolved = [_resolved(raw, key, value, model) for value in dimension.extremes()]
        if all(config == base for config in resolved):
            raise PipelineError(
                f"--space: {key} does not change model {model}'s settings; give a key it reads (on the sample, "
                f"its `sample` block may set it: models.{model}.sample.<key>)"
            )


def _resolved(raw: dict[str, Any], key: str, value: Scalar, model: str) -> ModelConfig:
    """The model's settings with `key` set to `value`."""
    changed = copy.deepcopy(raw)
    apply_override(changed, f"{key}={value}")
    return parse_params(changed, source=f"--space {key}={value}").model(model)
