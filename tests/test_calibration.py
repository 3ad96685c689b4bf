"""Temperature scaling (`pipeline.analysis.calibration`) and the calibration file beside a model file
(`pipeline.models.calibration`): the fit recovers a known temperature, the file is refused once the model changed,
and PyTorch, the ONNX export and the predict command all give the calibrated probabilities."""

import json

import numpy as np
import pytest
import torch
from test_cli import invoke

from pipeline.analysis.calibration import fit_temperature, held_out_check, nll
from pipeline.analysis.diagnostics import expected_calibration_error
from pipeline.config.params import parse_params
from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths
from pipeline.data.store import load_meta, load_split
from pipeline.inference.onnx_backend import OnnxBackend
from pipeline.inference.torch_backend import TorchBackend
from pipeline.models.calibration import (
    calibration_file,
    load_calibration,
    save_calibration,
    temperature_of,
)
from pipeline.models.outputs import probabilities
from pipeline.stages import export as export_stage
from tests.helpers.datasets import prepare
from tests.helpers.model_files import calibration_of, untrained_model
from tests.helpers.params import tiny_raw

MODEL = "catsdogs_cnn"


def _drawn(outputs: int, true_temperature: float, samples: int = 4000) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits whose labels are drawn from softmax (or sigmoid) of logits / true_temperature: a model exactly that
    many times too sure (T > 1) or too unsure (T < 1)."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(samples, outputs, generator=generator, dtype=torch.float64) * 3
    chances = probabilities(logits / true_temperature)
    labels = torch.multinomial(chances, 1, generator=generator)[:, 0]
    return logits, labels


@pytest.mark.parametrize("outputs", [1, 10])
@pytest.mark.parametrize("true_temperature", [0.5, 2.5])
def test_the_fit_recovers_the_temperature_the_labels_were_drawn_with(outputs, true_temperature):
    logits, labels = _drawn(outputs, true_temperature)
    fitted = fit_temperature(logits, labels)
    assert fitted == pytest.approx(true_temperature, rel=0.1)
    assert nll(logits, labels, fitted) < nll(logits, labels)
    before = expected_calibration_error(probabilities(logits).numpy(), labels.numpy())
    after = expected_calibration_error(probabilities(logits / fitted).numpy(), labels.numpy())
    assert after < before / 3


def test_a_calibrated_model_keeps_a_temperature_of_one_and_no_samples_give_one():
    logits, labels = _drawn(10, 1.0)
    assert fit_temperature(logits, labels) == pytest.approx(1.0, abs=0.05)
    assert fit_temperature(torch.zeros(0, 10), torch.zeros(0, dtype=torch.long)) == 1.0
    separated = torch.tensor([[3.0, -3.0], [-2.0, 2.0], [4.0, 0.0]])  # every image right: the NLL falls as T does
    assert fit_temperature(separated, torch.tensor([0, 1, 0])) == 1.0


def test_a_temperature_carries_over_to_held_out_images_only_where_the_model_is_miscalibrated():
    miscalibrated = held_out_check(*_drawn(10, 2.5, samples=300))
    assert miscalibrated.carries_over and miscalibrated.nll_calibrated < miscalibrated.nll_as_trained
    assert miscalibrated.ece_calibrated < miscalibrated.ece_as_trained
    assert not held_out_check(*_drawn(10, 1.0, samples=300)).carries_over  # a fit to noise does not beat as trained
    assert not held_out_check(torch.zeros(1, 10), torch.zeros(1, dtype=torch.long)).carries_over


@pytest.fixture
def project(tmp_path) -> Paths:
    """The tiny catsdogs set preprocessed, an untrained model for it and a calibration of temperature 0.4."""
    paths = prepare(Paths(tmp_path), parse_params(tiny_raw()), "catsdogs")
    model_file = paths.model_file(MODEL)
    untrained_model(model_file, load_meta(paths, "catsdogs"), seed=3)
    save_calibration(model_file, calibration_of(0.4, model_file))
    return paths


def test_no_calibration_file_is_a_temperature_of_one(project):
    model_file = project.model_file(MODEL)
    assert calibration_file(model_file) == project.calibration_file(MODEL)
    calibration_file(model_file).unlink()
    assert load_calibration(model_file) is None and temperature_of(model_file) == 1.0


def test_a_calibration_of_another_model_file_is_refused_naming_the_stage_to_run(project):
    model_file = project.model_file(MODEL)
    untrained_model(model_file, load_meta(project, "catsdogs"), seed=4)  # trained again since
    with pytest.raises(PipelineError, match=r"catsdogs_cnn.calibration.json: fitted to another version .*"
                                            r"`dvc repro evaluate@catsdogs_cnn`"):
        TorchBackend(model_file, "cpu")


def test_an_unreadable_calibration_file_names_itself(project):
    calibration_file(project.model_file(MODEL)).write_text(json.dumps({"temperature": -1}))
    with pytest.raises(PipelineError, match="calibration.json: not a calibration file"):
        load_calibration(project.model_file(MODEL))


def test_pytorch_the_onnx_file_and_the_predict_command_give_the_same_calibrated_probabilities(project, monkeypatch):
    model_file = project.model_file(MODEL)
    test = load_split(project, "catsdogs", "test")
    torch_backend = TorchBackend(model_file, "cpu")
    calibrated = torch_backend.probabilities(test.inputs)
    torch_backend.temperature = 1.0
    assert not np.allclose(calibrated, torch_backend.probabilities(test.inputs), atol=1e-3)
    export_stage.export(MODEL, project)
    onnx_backend = OnnxBackend(project.onnx_file(MODEL))
    assert onnx_backend.temperature == 0.4
    np.testing.assert_allclose(onnx_backend.probabilities(test.inputs), calibrated, rtol=0, atol=1e-5)
    monkeypatch.chdir(project.root)
    for backend in ("torch", "onnx"):
        result = invoke("predict", str(model_file), str(project.raw_archive("catsdogs")), "--backend", backend)
        assert result.exit_code == 0, result.output
        assert "probabilities calibrated: logits divided by 0.400" in result.output
