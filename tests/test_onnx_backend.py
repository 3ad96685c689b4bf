"""OnnxBackend: an exported ONNX file run by ONNX Runtime, without torch, with the preprocessing its metadata states.

The files here are small graphs written with onnx's helpers (no torch, milliseconds); tests/test_export.py runs the
backend on files the export stage wrote from real models."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from pipeline.core.errors import PipelineError
from pipeline.inference.backend import Backend, Preprocessing
from pipeline.inference.onnx_backend import OnnxBackend
from pipeline.inference.onnx_metadata import FORMAT_KEY, FORMAT_VERSION, ExportInfo
from tests.helpers.params import REPO

GRAY = Preprocessing(size=4, color="gray", resize="crop", normalize=True, mean=[0.5], std=[0.25], classes=["cat", "dog"])
INFO = ExportInfo(GRAY, model="tiny", arch="catsdogs_cnn", dataset="pets", kind="images", features=(), opset=18)


def _mean_brightness_model(metadata: dict[str, str] | None) -> onnx.ModelProto:
    """uint8 (batch, 4, 4, 1) in; out (batch, 2): [1 - b, b], b the image's mean pixel on the [0, 1] scale."""
    nodes = [
        helper.make_node("Cast", ["images"], ["pixels"], to=TensorProto.FLOAT),
        helper.make_node("Div", ["pixels", "scale"], ["scaled"]),
        helper.make_node("ReduceMean", ["scaled", "axes"], ["bright"], keepdims=0),
        helper.make_node("Sub", ["one", "bright"], ["dark"]),
        helper.make_node("Concat", ["dark", "bright"], ["probabilities"], axis=1),
    ]
    constants = [
        helper.make_tensor("scale", TensorProto.FLOAT, [], [255.0]),
        helper.make_tensor("axes", TensorProto.INT64, [2], [1, 2]),
        helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
    ]
    graph = helper.make_graph(
        nodes,
        "brightness",
        [helper.make_tensor_value_info("images", TensorProto.UINT8, ["batch", 4, 4, 1])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 2])],
        constants,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    if metadata is not None:
        helper.set_model_props(model, metadata)
    return model


def _written(tmp_path: Path, metadata: dict[str, str] | None = None, name: str = "tiny.onnx") -> Path:
    path = tmp_path / name
    onnx.save(_mean_brightness_model(INFO.props() if metadata is None else metadata), path)
    return path


def test_a_file_of_the_pipeline_gives_probabilities_and_states_its_preprocessing(tmp_path):
    backend = OnnxBackend(_written(tmp_path))
    assert backend.preprocessing == GRAY
    assert backend.info == INFO
    images = np.stack([np.zeros((4, 4, 1), np.uint8), np.full((4, 4, 1), 255, np.uint8)])
    np.testing.assert_allclose(backend.probabilities(images), [[1, 0], [0, 1]])


def test_it_is_a_backend(tmp_path):
    assert isinstance(OnnxBackend(_written(tmp_path)), Backend)


def test_inputs_go_in_batches_of_any_size_and_none_gives_an_empty_answer(tmp_path):
    backend = OnnxBackend(_written(tmp_path), batch_size=3)
    images = np.random.default_rng(0).integers(0, 256, (7, 4, 4, 1), dtype=np.uint8)
    expected = images.mean(axis=(1, 2, 3)) / 255
    np.testing.assert_allclose(backend.probabilities(images)[:, 1], expected, rtol=1e-6)
    assert backend.probabilities(images[:0]).shape == (0, 2)


def test_importing_it_does_not_import_torch():
    code = "import sys, pipeline.inference.onnx_backend; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_a_file_without_the_preprocessing_in_its_metadata_is_refused_naming_it(tmp_path):
    path = _written(tmp_path, metadata={}, name="bare.onnx")
    with pytest.raises(PipelineError, match="bare.onnx: not an ONNX file exported by this pipeline") as error:
        OnnxBackend(path)
    assert "size" in str(error.value) and "classes" in str(error.value)


def test_a_file_of_a_newer_metadata_format_is_refused(tmp_path):
    path = _written(tmp_path, metadata={**INFO.props(), FORMAT_KEY: json.dumps(FORMAT_VERSION + 1)})
    with pytest.raises(PipelineError, match=f"tiny.onnx: metadata format {FORMAT_VERSION + 1}, newer"):
        OnnxBackend(path)


@pytest.mark.parametrize(("content", "message"), [(None, "ONNX file not found"), (b"junk", "not a readable ONNX file")])
def test_a_missing_or_unreadable_file_is_an_error_naming_it(tmp_path, content, message):
    path = tmp_path / "model.onnx"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(PipelineError, match=f"model.onnx: {message}"):
        OnnxBackend(path)


@pytest.mark.parametrize(
    "images",
    [
        np.zeros((2, 4, 4, 1), np.float32),  # not uint8
        np.zeros((2, 4, 4, 3), np.uint8),  # rgb for a gray model
        np.zeros((4, 4, 1), np.uint8),  # one image without the batch axis
    ],
)
def test_inputs_of_another_shape_or_type_are_an_error_saying_what_it_expects(tmp_path, images):
    with pytest.raises(PipelineError, match=r"expects uint8 images of shape \(N, 4, 4, 1\), as the preprocess stage"):
        OnnxBackend(_written(tmp_path)).probabilities(images)


def test_preprocessing_and_metadata_round_trip_through_plain_values():
    assert Preprocessing.from_dict(json.loads(json.dumps(GRAY.to_dict()))) == GRAY
    table = ExportInfo(
        Preprocessing(1, None, None, True, [5.8, 3.0], [0.8, 0.4], ["a", "b", "c"]),
        model="iris_mlp", arch="mlp", dataset="iris", kind="table", features=("length", "width"), opset=18,
    )
    for info in (INFO, table):
        props = info.props()
        assert all(isinstance(value, str) for value in props.values())
        assert ExportInfo.from_props(props, Path("x.onnx")) == info
