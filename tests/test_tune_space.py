"""`pipeline tune`'s search space file: ranges and choices read with errors naming the key, the default space, and
keys checked against the model's settings before any trial."""

import pytest

from pipeline.config.params import parse_params
from pipeline.core.errors import PipelineError
from pipeline.tuning.space import Dimension, check_space, read_space
from tests.helpers.params import tiny_raw

SPACE = """
models.catsdogs_cnn.lr: {low: 0.0001, high: 0.01, log: true}
models.catsdogs_cnn.dense: {low: 8, high: 64, int: true}
train.batch_size: {choices: [4, 8]}
"""


def test_a_space_file_gives_each_key_its_kind_of_range(tmp_path):
    (tmp_path / "space.yaml").write_text(SPACE)
    model = parse_params(tiny_raw()).model("catsdogs_cnn")
    space = read_space(tmp_path / "space.yaml", model)
    assert space["models.catsdogs_cnn.lr"] == Dimension(low=0.0001, high=0.01, log=True)
    assert space["models.catsdogs_cnn.dense"].integer and space["train.batch_size"].choices == [4, 8]
    check_space(space, tiny_raw(), "catsdogs_cnn")


def test_without_a_file_the_space_is_the_models_lr_over_two_decades():
    model = parse_params(tiny_raw()).model("catsdogs_cnn")
    assert read_space(None, model) == {"models.catsdogs_cnn.lr": Dimension(low=0.0001, high=0.01, log=True)}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("models.catsdogs_cnn.lr: {low: 0.1, high: 0.01}", "models.catsdogs_cnn.lr: give low < high"),
        ("models.catsdogs_cnn.lr: {low: 0, high: 0.01, log: true}", "a log range needs low > 0"),
        ("models.catsdogs_cnn.lr: {choices: [1], low: 1, high: 2}", "either choices or low and high"),
    ],
)
def test_a_bad_range_is_an_error_naming_its_key(tmp_path, text, fragment):
    (tmp_path / "space.yaml").write_text(text)
    with pytest.raises(PipelineError, match=fragment):
        read_space(tmp_path / "space.yaml", parse_params(tiny_raw()).model("catsdogs_cnn"))


def test_a_key_the_model_does_not_read_or_an_invalid_value_is_refused_before_any_trial():
    raw = tiny_raw(**{"models.catsdogs_cnn.sample": {"lr": 0.002}})
    with pytest.raises(PipelineError, match="models.catsdogs_cnn.lr does not change model catsdogs_cnn"):
        check_space({"models.catsdogs_cnn.lr": Dimension(low=1e-4, high=1e-2, log=True)}, raw, "catsdogs_cnn")
    with pytest.raises(PipelineError, match="dense"):
        check_space({"models.catsdogs_cnn.dense": Dimension(low=-4, high=8, integer=True)}, tiny_raw(), "catsdogs_cnn")
