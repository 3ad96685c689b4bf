"""`pipeline predict --explain DIR`: beside every prediction, a PNG of the image and of its Grad-CAM heat map for the
predicted class (`pipeline.analysis.gradcam`), named after the image. PyTorch backend only: the map needs the
model's gradients, which an ONNX session does not give."""

import re
from pathlib import Path

import numpy as np

from pipeline.analysis.gradcam import heatmaps, last_conv
from pipeline.analysis.plots import explained_image, save_png
from pipeline.core.errors import PipelineError
from pipeline.inference.backend import Backend

UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class ExplanationWriter:
    """Writes one heat-map figure per predicted image into `folder`; give it each scored batch."""

    def __init__(self, backend: Backend, folder: Path) -> None:
        model = getattr(backend, "model", None)
        if model is None:
            raise PipelineError("--explain: Grad-CAM needs the model's gradients; predict with --backend torch")
        if last_conv(model) is None:
            raise PipelineError("--explain: the model has no convolution, so no Grad-CAM map (an MLP looks at no place)")
        self.backend, self.folder = backend, folder
        self.written: list[Path] = []
        folder.mkdir(parents=True, exist_ok=True)

    def __call__(self, names: list[str], images: np.ndarray, probabilities: np.ndarray) -> None:
        """Write the figures of a batch: `images` uint8 NHWC as predict prepared them, `probabilities` theirs."""
        predicted = probabilities.argmax(1)
        maps = heatmaps(self.backend.model, images, predicted, self.backend.normalization)
        classes = self.backend.preprocessing.classes
        for name, image, heat, label, row in zip(names, images, maps, predicted, probabilities, strict=True):
            path = self.folder / explanation_name(name)
            save_png(explained_image(image, heat, f"{name}\n{classes[label]} ({row[label]:.2f})"), path)
            self.written.append(path)


def explanation_name(name: str) -> str:
    """The figure's file name for an image shown as `name` (a path, maybe inside an archive): its path with every run
    of other characters than letters, digits, `.`, `_` and `-` made one `_`, then `.gradcam.png`."""
    return UNSAFE.sub("_", name).strip("_") + ".gradcam.png"
