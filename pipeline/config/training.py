"""Params of training: `aug` (augmentation of training images) and `train` (the optimisation)."""

from typing import Annotated, Literal

from pydantic import (
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from pipeline.config.base import Block, Count, Probability


class AugParams(Block):
    rotation: float = Field(0, ge=0, le=180)
    shift: float = Field(0, ge=0, le=0.5)
    zoom: float = Field(0, ge=0, lt=1)
    shear: float = Field(0, ge=0, lt=90)
    p: Probability = 1.0
    # a probability, or `alternate`: airbench's derandomised flips (half the images, drawn once from the seed, are
    # mirrored in odd epochs and the other half in even ones)
    hflip: Probability | Literal["alternate"] = 0.0
    vflip: Probability = 0
    brightness: float = Field(0, ge=0, le=1)
    contrast: float = Field(0, ge=0, le=1)
    crop_padding: int = Field(0, ge=0, le=64)
    policy: Literal["none", "trivialaugment", "randaugment"] = "none"
    erasing: Probability = 0

    @field_validator("hflip", mode="wrap")
    @classmethod
    def _one_message_for_hflip(cls, value: object, handler: ValidatorFunctionWrapHandler) -> float | str:
        """One error for a bad `hflip`, not one per kind of value it may be."""
        try:
            return handler(value)
        except ValidationError:
            raise PydanticCustomError("hflip", "should be a probability from 0 to 1, or alternate") from None

    def on(self) -> dict[str, float | int | str]:
        """The keys that turn a transform on (or, as `p`, tune one), with their values: all but zeros and `none`."""
        return {key: value for key, value in self.model_dump().items() if value not in (0, "none")}


class LrStep(Block):
    """One piece of a step schedule: this learning rate, held for this many epochs."""

    lr: float = Field(gt=0)
    epochs: Count


LrSchedule = Annotated[
    Annotated[Literal["constant", "cosine", "onecycle", "triangle"], Tag("named")] | Annotated[list[LrStep], Field(min_length=1), Tag("steps")],
    Discriminator(lambda value: "steps" if isinstance(value, list | tuple) else "named"),
]
UNION_TAGS = {"named", "steps"}


LOOKAHEAD_DECAY = 0.7738  # airbench's: 0.95 ** 5, a decay of 0.95 a step applied every 5 steps


class TrainParams(Block):
    epochs: Count = 10
    batch_size: Count = 32
    steps_per_epoch: Count | None = None
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0)
    lr_schedule: LrSchedule = "constant"
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: float = Field(0, ge=0)
    bn_lr_scale: float = Field(1, gt=0)
    l1: float = Field(0, ge=0)
    l2: float = Field(0, ge=0)
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    workers: Annotated[int, Field(ge=0)] | Literal["auto"] = "auto"
    data_on_device: bool = False
    amp: bool = True
    keep: Literal["best", "last"] = "best"
    class_weights: Literal["none", "auto"] = "none"
    monitor: Literal["val_loss", "val_acc"] = "val_loss"
    warmup_epochs: Annotated[int, Field(ge=0)] = 0
    label_smoothing: float = Field(0, ge=0, lt=1)
    mixup: float = Field(0, ge=0)
    cutmix: float = Field(0, ge=0)
    mix_prob: Probability = 1.0
    ema: float = Field(0, ge=0, lt=1)
    lookahead_every: Annotated[int, Field(ge=0)] = 0
    lookahead_decay: float = Field(LOOKAHEAD_DECAY, gt=0, lt=1)
    whiten: bool = False
    whiten_bias_epochs: Annotated[int, Field(ge=0)] | None = None
    compile: bool = False
    patience: Count | None = None
    min_delta: float = Field(0, ge=0)
    stop_after: Count | None = None

    @model_validator(mode="after")
    def _keys_that_need_another(self) -> "TrainParams":
        """A key that only means something beside another one is refused without it, naming the one to set."""
        if self.nesterov and (self.optimizer != "sgd" or not self.momentum):
            raise ValueError("nesterov: Nesterov momentum needs optimizer sgd with momentum above 0")
        if self.whiten_bias_epochs is not None and not self.whiten:
            raise ValueError("whiten_bias_epochs: the whitening layer's bias needs whiten: true (or set it to null)")
        if self.warmup_epochs and self.lr_schedule == "triangle":
            raise ValueError("warmup_epochs: the triangle schedule rises on its own; set warmup_epochs to 0")
        if self.lookahead_decay != LOOKAHEAD_DECAY and not self.lookahead_every:
            raise ValueError("lookahead_decay: set lookahead_every (steps between lookahead updates) to turn it on")
        return self

    def recorded(self) -> dict:
        """The settings as the model file records them: early stopping's keys only when it is on, and `stop_after`
        only when set, so that a model file of a run without them has the bytes it had before the keys existed."""
        off = {"patience", "min_delta"} if self.patience is None else set()
        return self.model_dump(mode="json", exclude=off | ({"stop_after"} if self.stop_after is None else set()))


BATCHED_AUG_KEYS = ("crop_padding", "shift", "p", "hflip", "vflip")  # what `batch_augment` does as tensor ops


def unbatched_aug(aug: AugParams) -> list[str]:
    """The `aug.*` keys that are on and have no batched tensor version (all but crop_padding, shift, the flips):
    rotation, zoom, shear, brightness, contrast, policy and erasing, done image by image on the host."""
    return [f"aug.{key}" for key in aug.on() if key not in BATCHED_AUG_KEYS]
