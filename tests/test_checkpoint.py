import re

import pytest
import torch

from pipeline.core.errors import PipelineError
from pipeline.core.torchfile import read_torch_file
from pipeline.models.file import load_model
from tests.helpers.crafted import crafted_torch_file, runs_code_when_trusted


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip-format", "legacy-format"])
def test_a_crafted_model_file_is_refused_without_running_its_code(tmp_path, zip_format):
    marker = tmp_path / "pwned"
    model_file = crafted_torch_file(tmp_path / "models" / "catsdogs_cnn.pt", marker, zip_format)

    with pytest.raises(PipelineError) as error:
        load_model(model_file)

    assert str(error.value).startswith(f"{model_file}: refused to load this model file: it asks to run io.open")
    assert str(error.value).endswith("run the train stage again: `dvc repro train@catsdogs_cnn`")
    assert not marker.exists()
    assert runs_code_when_trusted(model_file, marker)


@pytest.mark.parametrize(
    "content", [b"", b"half a checkpoint", b"PK\x03\x04" + bytes(64)], ids=["empty", "garbage", "broken-zip"]
)
def test_an_unreadable_torch_file_is_one_line_naming_it(tmp_path, content):
    path = tmp_path / "model.ckpt"
    path.write_bytes(content)

    with pytest.raises(PipelineError, match=re.escape(f"{path}: not a readable checkpoint (")) as error:
        read_torch_file(path, "checkpoint")

    assert "\n" not in str(error.value)


def test_a_torch_file_that_is_not_a_dict_is_refused(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(torch.zeros(2), path)

    with pytest.raises(PipelineError, match=r"not a readable model file \(holds a Tensor, not a dict\)"):
        read_torch_file(path, "model file")
