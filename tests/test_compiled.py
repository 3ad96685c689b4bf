"""`train.compile`: the training steps through torch.compile, warmed up before the first epoch with the model put
back as it was, its time printed apart, and a run that repeats itself exactly."""

import pytest
import torch

from pipeline.config.params import parse_params
from pipeline.stages.train import train
from pipeline.training.compiled import inductor_cache
from tests.helpers.params import tiny_raw
from tests.helpers.train_runs import outputs, weights

pytestmark = pytest.mark.usefixtures("outside_any_repo")
# Compiled dropout draws its masks from inductor's own generator, so only a model without it trains as eager does.
NO_DROPOUT = {"models.catsdogs_cnn.dropout": [0, 0, 0]}


def test_the_inductor_cache_lives_in_the_pipelines_cache_unless_inductors_own_variable_says(monkeypatch, tmp_path):
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(tmp_path))
    assert inductor_cache() == tmp_path / "inductor"
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "own"))
    assert inductor_cache() == tmp_path / "own"


@pytest.mark.slow
def test_a_compiled_run_prints_its_compile_time_and_repeats_itself_exactly(prepared, capsys):
    params = parse_params(tiny_raw(**NO_DROPOUT, **{"train.compile": True}))
    train("catsdogs_cnn", params, prepared)
    err = capsys.readouterr().err
    assert "compiling the training step (torch.compile" in err and "compiled in " in err
    first, figures = weights(prepared), outputs(prepared)

    train("catsdogs_cnn", params, prepared)
    again = weights(prepared)
    assert all(torch.equal(first[key], again[key]) for key in first) and outputs(prepared) == figures

    train("catsdogs_cnn", parse_params(tiny_raw(**NO_DROPOUT)), prepared)  # eager: the same steps, floats reordered
    eager = weights(prepared)
    assert all(torch.allclose(first[key], eager[key], atol=1e-3) for key in first)
