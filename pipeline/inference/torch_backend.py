"""A model file (`models/<model>.pt`) run by PyTorch, on the CPU or a GPU, in batches, with the temperature the
evaluate stage fitted for it (`models/<model>.calibration.json`; 1 without one)."""

from pathlib import Path

import numpy as np

from pipeline.core.errors import PipelineError
from pipeline.core.runtime import Normalization, pick_device, place
from pipeline.models.calibration import load_calibration
from pipeline.models.forward import predict_logits
from pipeline.models.file import load_model
from pipeline.models.outputs import probabilities

BATCH_SIZE = 64


class TorchBackend:
    """The model of a model file, in eval mode on `device` (`auto`: CUDA when present), with the preprocessing
    recorded in the file and the rest of its provenance (`saved`: architecture, dataset, epoch, ...), and the
    temperature its logits are divided by (evaluate's calibration; 1 without one)."""

    def __init__(self, path: Path, device: str = "auto", batch_size: int = BATCH_SIZE) -> None:
        model, self.saved = load_model(path)
        if self.saved.is_table:
            raise PipelineError(
                f"{path}: {self.saved.model} was trained on a table of features ({self.saved.dataset}), not on "
                "images; predict takes images"
            )
        self.preprocessing = self.saved.image_preprocessing()
        self.normalization = Normalization.from_stats(self.preprocessing)
        self.device = pick_device(device, key="--device")
        self.model = place(model, self.device)
        self.batch_size = batch_size
        calibration = load_calibration(path)
        self.temperature = 1.0 if calibration is None else calibration.temperature

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities (N, classes) of uint8 images (N, size, size, channels), as evaluate computes them:
        of the logits divided by the temperature."""
        logits = predict_logits(self.model, images, self.batch_size, self.device, self.normalization)
        return probabilities(logits / self.temperature).numpy()
