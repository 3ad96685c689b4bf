"""Predictions from an exported ONNX file with ONNX Runtime, without torch: the file's graph scales and standardises
the inputs and turns the model's outputs into class probabilities itself, and its metadata states the preprocessing
(`pipeline.inference.onnx_metadata`). Importing this module never imports torch (a test checks it)."""

from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.capi.onnxruntime_pybind11_state import (
    Fail,
    InvalidArgument,
    InvalidProtobuf,
)

from pipeline.core.errors import PipelineError
from pipeline.inference.backend import Preprocessing
from pipeline.inference.onnx_metadata import OUTPUT, ExportInfo

BATCH_SIZE = 256


class OnnxBackend:
    """A model exported by the export stage, run by ONNX Runtime on the CPU. `probabilities` takes what the
    preprocess stage stores: uint8 images (N, size, size, channels), or a table's feature rows (N, features)."""

    def __init__(self, path: Path, *, threads: int | None = None, batch_size: int = BATCH_SIZE) -> None:
        path = Path(path)
        if not path.is_file():
            raise PipelineError(f"{path}: ONNX file not found; run `dvc repro export@<model>` first")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except (InvalidProtobuf, InvalidArgument, Fail) as exc:
            raise PipelineError(
                f"{path}: not a readable ONNX file ({exc}); export the model again: `dvc repro export@{path.stem}`"
            ) from None
        self.path, self.batch_size = path, batch_size
        self.info = ExportInfo.from_props(self.session.get_modelmeta().custom_metadata_map, path)
        self.preprocessing: Preprocessing = self.info.preprocessing
        self.temperature = self.info.temperature
        self._input = self.session.get_inputs()[0].name

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities (N, classes), float32, in batches of `batch_size`."""
        inputs = self._checked(np.asarray(images))
        classes = len(self.preprocessing.classes)
        parts = [
            self.session.run([OUTPUT], {self._input: np.ascontiguousarray(inputs[start : start + self.batch_size])})[0]
            for start in range(0, len(inputs), self.batch_size)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, classes), np.float32)

    def _checked(self, inputs: np.ndarray) -> np.ndarray:
        """The inputs as the graph takes them, or an error saying what shape and type it expects."""
        if self.info.kind == "table":
            expected, dtype = (len(self.info.features),), np.float32
            ok = inputs.ndim == 2 and np.issubdtype(inputs.dtype, np.number)
        else:
            size = self.preprocessing.size
            expected, dtype = (size, size, 1 if self.preprocessing.color == "gray" else 3), np.uint8
            ok = inputs.ndim == 4 and inputs.dtype == np.uint8
        if not ok or inputs.shape[1:] != expected:
            wanted = "float feature rows" if self.info.kind == "table" else "uint8 images"
            raise PipelineError(
                f"{self.path}: expects {wanted} of shape (N, {', '.join(map(str, expected))}), as the preprocess "
                f"stage stores them; got {inputs.dtype} {inputs.shape}"
            )
        return inputs.astype(dtype, copy=False)
