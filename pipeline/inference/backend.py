"""What every inference backend offers, whatever runs the model (PyTorch in `torch_backend`, ONNX Runtime in
`onnx_backend`): the preprocessing of training, read from the model, and class probabilities for a batch of images
prepared as preprocess stores them. Imports no torch, so that the ONNX backend needs none.

`Preprocessing` is defined in `pipeline.core.preprocessing`, beside the model file's reader (a lower layer, which
cannot import this one), and is the same class here.
"""

from typing import Protocol, runtime_checkable

import numpy as np

from pipeline.core.preprocessing import Preprocessing

__all__ = ["Backend", "Preprocessing"]


@runtime_checkable
class Backend(Protocol):
    """A trained model, ready to score images."""

    preprocessing: Preprocessing
    # The temperature the model's logits are divided by before the softmax or sigmoid (evaluate's calibration, fitted
    # on the validation split; 1: as trained), already applied by `probabilities`.
    temperature: float

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """uint8 images (N, size, size, channels), made as preprocess makes them (`pipeline.inference.predict.
        prepared`), to float class probabilities (N, classes), classes in `preprocessing.classes` order."""
        ...
