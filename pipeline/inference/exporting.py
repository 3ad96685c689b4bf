"""A trained model as one self-contained graph, for deployment without this project's code: preprocessed inputs in
(uint8 images (N, size, size, channels) exactly as the preprocess stage stores them, or a table's float32 feature
rows), class probabilities (N, classes) out. Scaling to [0, 1], the per-channel standardisation, the division by the
calibration's temperature and the sigmoid or softmax are inside the graph, through the functions evaluation uses
(`model_input`, `probabilities`).

The graph is captured once with `torch.export` (a batch axis of any size); the ONNX file is translated from that same
program by torch.onnx's exporter (`dynamo=True`, opset `OPSET`) and carries the preprocessing in its metadata.
"""

import numpy as np
import onnx
import torch
from torch import nn
from torch.export import Dim, ExportedProgram

from pipeline.core.runtime import Normalization, model_input
from pipeline.inference.onnx_metadata import OUTPUT, ExportInfo
from pipeline.models.outputs import probabilities

# torch.onnx's own opset (the one its translation library is written for: no version conversion afterwards), which
# ONNX Runtime 1.14 and later run.
OPSET = 18
BATCH = "batch"


class InferenceGraph(nn.Module):
    """The model as deployed: preprocessed inputs in, class probabilities out (see the module's docstring)."""

    def __init__(self, model: nn.Module, normalization: Normalization | None, temperature: float = 1.0) -> None:
        super().__init__()
        self.model, self.normalize = model.eval(), normalization is not None
        self.register_buffer("temperature", torch.tensor(temperature, dtype=torch.float32))
        if normalization is not None:
            self.register_buffer("mean", torch.tensor(normalization.mean))
            self.register_buffer("std", torch.tensor(normalization.std))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        # Standardised here with the graph's own constants, as `model_input` does with statistics it caches: a cache
        # first filled while torch.export traces would keep the trace's placeholder tensors, not the values.
        tensor = model_input(inputs)
        if self.normalize:
            shape = (1, -1) + (1,) * (tensor.ndim - 2)
            tensor = (tensor - self.mean.view(shape)) / self.std.view(shape)
        return probabilities(self.model(tensor) / self.temperature)


def export_program(graph: InferenceGraph, example: np.ndarray) -> ExportedProgram:
    """The graph in eval mode as a `torch.export` program whose batch axis takes any size; `example` is a batch of
    at least two inputs of the right shape and type (a batch of one would fix the axis at 1)."""
    dynamic = {"inputs": {0: Dim(BATCH, min=1)}}
    program = torch.export.export(graph.eval(), (torch.from_numpy(np.array(example)),), dynamic_shapes=dynamic)
    for node in program.graph.nodes:
        node.meta.pop("stack_trace", None)  # source file paths: the same model would give other bytes elsewhere
    return program


def onnx_model(program: ExportedProgram, info: ExportInfo) -> onnx.ModelProto:
    """The program as an ONNX model of opset `OPSET`: input `images` (or `features`), output `probabilities`, both
    with a batch axis named `batch`, and `info` in its metadata."""
    name = "features" if info.kind == "table" else "images"
    exported = torch.onnx.export(
        program, dynamo=True, opset_version=OPSET, input_names=[name], output_names=[OUTPUT], verbose=False
    )
    model = exported.model_proto
    for node in [*model.graph.node, *(node for function in model.functions for node in function.node)]:
        del node.metadata_props[:]  # the exporter's stack traces: source file paths, which differ between clones
        node.doc_string = ""
    _name_batch_axis(model.graph)
    onnx.helper.set_model_props(model, info.props())
    model.doc_string = (
        f"{info.model} ({info.arch}, trained on {info.dataset}): {name} in, as the pipeline's preprocess stage stores "
        f"them ({_input_text(info)}); class probabilities ({', '.join(info.preprocessing.classes)}) out. Scaling, "
        f"normalisation, the calibration's temperature ({info.temperature:g}) and softmax/sigmoid are inside the graph; "
        "metadata_props (JSON values) state the preprocessing."
    )
    return model


def _input_text(info: ExportInfo) -> str:
    if info.kind == "table":
        return f"float32 rows of {', '.join(info.features)}"
    prep = info.preprocessing
    return f"uint8 {prep.color} {prep.size}x{prep.size} (N, H, W, C), 0-255, made square by {prep.resize}"


def _name_batch_axis(graph: onnx.GraphProto) -> None:
    """Call the batch axis `batch` wherever it appears (the exporter names it after an internal symbol)."""
    symbol = graph.input[0].type.tensor_type.shape.dim[0].dim_param
    for value in (*graph.input, *graph.output, *graph.value_info):
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param == symbol:
                dim.dim_param = BATCH


@torch.no_grad()
def program_probabilities(program: ExportedProgram, inputs: np.ndarray, batch_size: int) -> np.ndarray:
    """Run an exported program over `inputs` in batches: class probabilities (N, classes)."""
    module = program.module()
    parts = [
        module(torch.from_numpy(np.array(inputs[start : start + batch_size]))).numpy()
        for start in range(0, len(inputs), batch_size)
    ]
    return np.concatenate(parts)
