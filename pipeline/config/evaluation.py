"""The `evaluate` block: how the evaluate stage scores a model on its test split."""

from typing import Literal

from pipeline.config.base import Block

TtaMode = Literal["none", "flip", "flip_shift"]


class EvaluateParams(Block):
    """`tta`, test-time augmentation: the class probabilities evaluate reports are the mean over views of each test
    image. none: the image alone; flip: it and its mirror (flipped left-right); flip_shift: those two, each also
    moved one pixel down-right and one pixel up-left (edge pixels repeated into the gap), six views in all
    (airbench's). Images only: a table's rows get none.

    `gradcam`: draw each image of the misclassified and top-losses grids under its Grad-CAM heat map (convolutional
    models; the others' grids stay plain). Off by default: the grids of the default pipeline stay as they were."""

    tta: TtaMode = "none"
    gradcam: bool = False
    calibrate: bool = True
