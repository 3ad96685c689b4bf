"""Params of training: `aug` (augmentation of training images) and `train` (the optimisation)."""

from typing import Annotated, Literal

from pydantic import Discriminator, Field, Tag

from pipeline.config.base import Block, Count, Probability


class AugParams(Block):
    rotation: float = Field(0, ge=0, le=180)
    shift: float = Field(0, ge=0, le=0.5)
    zoom: float = Field(0, ge=0, lt=1)
    shear: float = Field(0, ge=0, lt=90)
    p: Probability = 1.0
    hflip: Probability = 0
    vflip: Probability = 0
    brightness: float = Field(0, ge=0, le=1)
    contrast: float = Field(0, ge=0, le=1)
    crop_padding: int = Field(0, ge=0, le=64)
    policy: Literal["none", "trivialaugment", "randaugment"] = "none"
    erasing: Probability = 0

    def on(self) -> dict[str, float | int | str]:
        """The keys that turn a transform on (or, as `p`, tune one), with their values: all but zeros and `none`."""
        return {key: value for key, value in self.model_dump().items() if value not in (0, "none")}


class LrStep(Block):
    """One piece of a step schedule: this learning rate, held for this many epochs."""

    lr: float = Field(gt=0)
    epochs: Count


LrSchedule = Annotated[
    Annotated[Literal["constant", "cosine", "onecycle"], Tag("named")] | Annotated[list[LrStep], Field(min_length=1), Tag("steps")],
    Discriminator(lambda value: "steps" if isinstance(value, list | tuple) else "named"),
]
UNION_TAGS = {"named", "steps"}


class TrainParams(Block):
    epochs: Count = 10
    batch_size: Count = 32
    steps_per_epoch: Count | None = None
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0)
    lr_schedule: LrSchedule = "constant"
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(0, ge=0)
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
    patience: Count | None = None
    min_delta: float = Field(0, ge=0)
    stop_after: Count | None = None

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
