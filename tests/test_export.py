"""The export stage: every architecture exported to ONNX and a torch.export program that agree with PyTorch, for any
batch size; the preprocessing in the ONNX metadata; the stage's parity check, its metrics and its refusals."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from pipeline.cli.stages import app
from pipeline.config.archs import (
    AirbenchArgs,
    CatsDogsCnnArgs,
    CifarCnnArgs,
    MlpArgs,
    ResNet18Args,
    SmallResNetArgs,
    TimmArgs,
    Vgg16Args,
)
from pipeline.config.params import parse_params
from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths
from pipeline.core.runtime import Normalization, to_tensor
from pipeline.data.store import load_meta, load_split
from pipeline.inference.backend import Preprocessing
from pipeline.inference.exporting import (
    OPSET,
    InferenceGraph,
    export_program,
    onnx_model,
    program_probabilities,
)
from pipeline.inference.onnx_backend import OnnxBackend
from pipeline.inference.onnx_metadata import ExportInfo
from pipeline.models.file import save_model
from pipeline.models.outputs import probabilities
from pipeline.models.registry import ARCHS, BATCHNORM, build_model
from pipeline.stages import export as stage
from tests.helpers.datasets import prepare
from tests.helpers.params import TINY_IRIS, tiny_raw

RGB = Normalization((0.49, 0.48, 0.45), (0.25, 0.24, 0.26))
# arch, args, channels (features for a table), size (1: a table), classes, normalisation
CASES = {
    "catsdogs_cnn-2-sigmoid-dropout": ("catsdogs_cnn", CatsDogsCnnArgs(), 1, 32, 2, None),
    "mlp-table-3": ("mlp", MlpArgs(hidden=[8]), 4, 1, 3, Normalization((5.8, 3.0, 3.7, 1.2), (0.8, 0.4, 1.7, 0.8))),
    "mlp-rgb-13": ("mlp", MlpArgs(hidden=[16, 8]), 3, 8, 13, RGB),
    "cifar_cnn-batchnorm-dropout-10": (
        "cifar_cnn",
        CifarCnnArgs(widths=(4, 8, 8), dense=8, batchnorm=True, dropout=(0.2, 0.3, 0.4, 0.5)),
        3, 8, 10, RGB,
    ),
    "cifar_cnn-gray-2": ("cifar_cnn", CifarCnnArgs(widths=(4, 4, 4), dense=8), 1, 8, 2, Normalization((0.5,), (0.2,))),
    # torchvision's nets at full width (VGG16-BN: 15M parameters): about 5 s each
    "vgg16-batchnorm-3": ("vgg16", Vgg16Args(pretrained=False, batchnorm=True, head=8), 3, 32, 3, RGB),
    "resnet18-2": ("resnet18", ResNet18Args(), 3, 8, 2, RGB),
    "airbench-10": ("airbench", AirbenchArgs(stem=4, widths=(8, 8, 8)), 3, 16, 10, RGB),
    "small_resnet-gray-3": ("small_resnet", SmallResNetArgs(widths=(4, 8, 8, 8)), 1, 16, 3, Normalization((0.5,), (0.2,))),
    "timm-test_resnet-10": ("timm", TimmArgs(model_name="test_resnet"), 3, 16, 10, RGB),
}


def _model(arch, args, channels, size, classes) -> nn.Module:
    """A fresh model in eval mode, its BatchNorm running statistics moved off their defaults, so that eval mode
    (what is exported) and train mode give different outputs."""
    torch.manual_seed(0)
    model = build_model(arch, args, in_channels=channels, size=size, num_classes=classes)
    for layer in model.modules():
        if isinstance(layer, BATCHNORM):
            layer.running_mean.uniform_(-0.5, 0.5)
            layer.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _inputs(channels: int, size: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(n)
    if size == 1:
        return rng.normal(3.0, 2.0, (n, channels)).astype(np.float32)
    return rng.integers(0, 256, (n, size, size, channels), dtype=np.uint8)


def _info(channels: int, size: int, classes: int, normalization: Normalization | None) -> ExportInfo:
    table = size == 1
    preprocessing = Preprocessing(
        size=size,
        color=None if table else {1: "gray", 3: "rgb"}[channels],
        resize=None if table else "squash",
        normalize=normalization is not None,
        mean=list(normalization.mean if normalization else (0.5,) * channels),
        std=list(normalization.std if normalization else (0.25,) * channels),
        classes=[f"c{index}" for index in range(classes)],
    )
    features = tuple(f"f{index}" for index in range(channels)) if table else ()
    kind = "table" if table else "images"
    return ExportInfo(preprocessing, "tiny", "arch", "data", kind, features, OPSET)


FAST_CASES = {"catsdogs_cnn-2-sigmoid-dropout", "mlp-table-3"}  # the others in the slow tier


@pytest.mark.parametrize(
    "case", [case if case in FAST_CASES else pytest.param(case, marks=pytest.mark.slow) for case in CASES]
)
def test_every_architecture_exports_to_onnx_and_a_program_that_agree_with_pytorch_for_any_batch(tmp_path, case):
    arch, args, channels, size, classes, normalization = CASES[case]
    model = _model(arch, args, channels, size, classes)
    program = export_program(InferenceGraph(model, normalization), _inputs(channels, size, 2))
    onnx.save(onnx_model(program, _info(channels, size, classes, normalization)), tmp_path / "m.onnx")
    torch.export.save(program, tmp_path / "m.pt2")
    backend, loaded = OnnxBackend(tmp_path / "m.onnx"), torch.export.load(tmp_path / "m.pt2")
    for batch in (1, 7):
        inputs = _inputs(channels, size, batch)
        with torch.no_grad():
            expected = probabilities(model(to_tensor(inputs, normalization))).numpy()
        assert expected.shape == (batch, classes)
        for got in (backend.probabilities(inputs), program_probabilities(loaded, inputs, batch_size=4)):
            assert got.shape == (batch, classes)
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
            np.testing.assert_allclose(got.sum(1), 1, atol=1e-5)


def test_the_onnx_file_names_its_axes_and_states_the_preprocessing_in_its_metadata(tmp_path):
    arch, args, channels, size, classes, normalization = CASES["cifar_cnn-gray-2"]
    program = export_program(InferenceGraph(_model(arch, args, channels, size, classes), normalization), _inputs(1, 8, 2))
    info = _info(channels, size, classes, normalization)
    onnx.save(onnx_model(program, info), tmp_path / "m.onnx")
    model = onnx.load(tmp_path / "m.onnx")
    dims = {
        value.name: [dim.dim_param or dim.dim_value for dim in value.type.tensor_type.shape.dim]
        for value in (*model.graph.input, *model.graph.output)
    }
    assert dims == {"images": ["batch", 8, 8, 1], "probabilities": ["batch", 2]}
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [opset.version for opset in model.opset_import if opset.domain == ""] == [OPSET]
    props = {prop.key: json.loads(prop.value) for prop in model.metadata_props}
    assert props["color"] == "gray" and props["size"] == 8 and props["classes"] == ["c0", "c1"]
    assert props["opset"] == OPSET and props["format_version"] == 1
    assert ExportInfo.from_props({key: json.dumps(value) for key, value in props.items()}, tmp_path) == info
    assert OnnxBackend(tmp_path / "m.onnx").info == info


def _trained(paths: Paths, raw: dict, name: str) -> Paths:
    """The model's dataset prepared under `paths` and a fresh (untrained) model saved as the train stage saves it."""
    params = parse_params(raw)
    config = params.model(name)
    prepare(paths, params, config.dataset)
    meta = load_meta(paths, config.dataset)
    channels = load_split(paths, config.dataset, "train").inputs.shape[-1]
    torch.manual_seed(0)
    model = build_model(config.arch, config.arch_args, in_channels=channels, size=meta.size,
                        num_classes=len(meta.classes))
    save_model(paths.model_file(name), model, config, meta, channels, params.seed, epoch=1)
    return paths


@pytest.fixture
def catsdogs_model(paths: Paths) -> Paths:
    return _trained(paths, tiny_raw(), "catsdogs_cnn")


def test_the_stage_writes_both_files_and_the_parity_figures(catsdogs_model):
    paths = catsdogs_model
    report = stage.export("catsdogs_cnn", paths)
    assert json.loads(paths.export_metrics("catsdogs_cnn").read_text()) == report
    assert set(report) == {"onnx", "program", "samples"} and report["samples"] == 6
    for run in ("onnx", "program"):
        assert report[run]["max_abs_diff"] <= 1e-5 and report[run]["top1_agreement"] == 1.0
    backend = OnnxBackend(paths.onnx_file("catsdogs_cnn"))
    assert backend.preprocessing == Preprocessing(
        size=32, color="gray", resize="squash", normalize=False, mean=backend.preprocessing.mean,
        std=backend.preprocessing.std, classes=["cat", "dog"],
    )
    assert (backend.info.model, backend.info.arch, backend.info.dataset) == ("catsdogs_cnn", "catsdogs_cnn", "catsdogs")
    test = load_split(paths, "catsdogs", "test")
    program = torch.export.load(paths.program_file("catsdogs_cnn"))
    np.testing.assert_allclose(program_probabilities(program, test.inputs, 4), backend.probabilities(test.inputs), atol=1e-5)


@pytest.mark.slow
def test_the_exports_hold_no_source_paths_so_a_clone_anywhere_writes_the_same_bytes(catsdogs_model):
    paths = catsdogs_model
    stage.export("catsdogs_cnn", paths)
    written = [paths.onnx_file("catsdogs_cnn").read_bytes(), paths.program_file("catsdogs_cnn").read_bytes()]
    assert not any(str(Path(stage.__file__).parents[2]).encode() in data for data in written)
    stage.export("catsdogs_cnn", paths)
    assert [paths.onnx_file("catsdogs_cnn").read_bytes(), paths.program_file("catsdogs_cnn").read_bytes()] == written


@pytest.mark.slow
def test_parity_takes_the_first_test_inputs_up_to_the_cap_in_batches_the_last_one_smaller(catsdogs_model, monkeypatch):
    monkeypatch.setattr(stage, "PARITY_SAMPLES", 5)
    monkeypatch.setattr(stage, "BATCH_SIZE", 2)
    seen = []
    honest = OnnxBackend.probabilities

    def spied(self, images):
        seen.append((len(images), self.batch_size))
        return honest(self, images)

    monkeypatch.setattr(OnnxBackend, "probabilities", spied)
    report = stage.export("catsdogs_cnn", catsdogs_model)
    assert report["samples"] == 5 and seen == [(5, 2)]  # ONNX Runtime runs batches of 2, 2 and 1
    assert report["onnx"]["max_abs_diff"] <= 1e-5 and report["program"]["max_abs_diff"] <= 1e-5


@pytest.mark.slow
def test_a_table_model_is_exported_with_its_features_and_statistics(paths):
    _trained(paths, json.loads(json.dumps(TINY_IRIS)) | {"seed": 7}, "iris_mlp")
    report = stage.export("iris_mlp", paths)
    assert report["samples"] == 30 and report["onnx"]["max_abs_diff"] <= 1e-5
    info = OnnxBackend(paths.onnx_file("iris_mlp")).info
    meta = load_meta(paths, "iris")
    assert info.kind == "table" and info.features == tuple(meta.features)
    assert info.preprocessing.color is None and info.preprocessing.mean == meta.mean


@pytest.mark.parametrize("run", ["onnx", pytest.param("program", marks=pytest.mark.slow)])
def test_the_stage_fails_naming_the_model_and_the_figures_when_an_export_disagrees(catsdogs_model, monkeypatch, run):
    paths = catsdogs_model
    if run == "onnx":
        honest = OnnxBackend.probabilities
        monkeypatch.setattr(OnnxBackend, "probabilities", lambda self, images: honest(self, images) + 2e-4)
    else:
        honest = stage.program_probabilities
        monkeypatch.setattr(stage, "program_probabilities", lambda *args: honest(*args)[:, ::-1])
    with pytest.raises(PipelineError) as error:
        stage.export("catsdogs_cnn", paths)
    message = str(error.value)
    assert message.startswith("catsdogs_cnn: the exported model disagrees with PyTorch on the 6 test inputs beyond 0.0001")
    assert "max |difference| 0.0002" in message if run == "onnx" else "top-1 agreement 0.0000" in message
    assert "nothing was written" in message
    written = (paths.onnx_file("catsdogs_cnn"), paths.program_file("catsdogs_cnn"), paths.export_metrics("catsdogs_cnn"))
    assert not any(path.exists() for path in written)
    assert sorted(path.name for path in paths.model_file("catsdogs_cnn").parent.iterdir()) == ["catsdogs_cnn.pt"]


def test_a_model_whose_data_changed_since_training_is_refused(catsdogs_model):
    meta_file = catsdogs_model.processed_dir("catsdogs") / "meta.json"
    meta_file.write_text(json.dumps({**json.loads(meta_file.read_text()), "classes": ["cat", "fox"]}))
    with pytest.raises(PipelineError, match="catsdogs_cnn: the model was trained on catsdogs .* run the train stage"):
        stage.export("catsdogs_cnn", catsdogs_model)


def test_the_command_without_a_trained_model_is_one_error_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["export", "catsdogs_cnn"])
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: models/catsdogs_cnn.pt: model not found; run the train stage first: `dvc repro train@catsdogs_cnn`"
    )


def test_every_registered_architecture_is_exported_by_a_case_here():
    assert {arch for arch, *_ in CASES.values()} == set(ARCHS)
