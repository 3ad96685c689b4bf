"""The model file's format 2: the whole image preprocessing is saved, and a file of another format or with missing
or ill-typed keys is refused, naming the file and the train stage that writes it again."""

import re

import pytest
import torch

from pipeline.config.archs import ARCH_ARGS
from pipeline.config.training import AugParams, TrainParams
from pipeline.core.errors import PipelineError
from pipeline.core.preprocessing import Preprocessing
from pipeline.core.torchfile import read_torch_file
from pipeline.data.store import DatasetMeta
from pipeline.models.file import SavedModel, load_model
from tests.helpers.model_files import image_meta, rewritten, untrained_model

CLASSES = ["ant", "bee", "cow"]


@pytest.fixture
def model_file(tmp_path):
    return untrained_model(tmp_path / "models" / "bugs_cnn.pt", image_meta(CLASSES, color="rgb", resize="pad"), "bugs_cnn")


def test_the_model_file_holds_the_whole_preprocessing(model_file):
    model, saved = load_model(model_file)
    assert read_torch_file(model_file, "model file")["format"] == 2
    assert saved.image_preprocessing() == Preprocessing(
        size=24, color="rgb", resize="pad", normalize=True, mean=[0.4] * 3, std=[0.2] * 3, classes=CLASSES
    )
    assert model(torch.zeros(2, 3, 24, 24)).shape == (2, 3)


def test_a_table_model_saves_no_image_preprocessing(tmp_path):
    meta = {"kind": "table", "classes": CLASSES, "features": ["a", "b"], "size": 1, "mean": [0.0] * 2,
            "std": [1.0] * 2, "normalize": True}
    path = untrained_model(tmp_path / "iris.pt", DatasetMeta.model_validate({**meta, "size": 24}))
    assert load_model(path)[1].is_table


def _without_format(saved: dict) -> None:
    del saved["format"]


def test_a_model_file_of_an_older_pipeline_is_refused_naming_it(model_file):
    rewritten(model_file, _without_format)
    with pytest.raises(PipelineError) as error:
        load_model(model_file)
    assert str(error.value) == (
        f"{model_file}: written by an older version of the pipeline; this one reads model files of format 2; re-run "
        "`dvc repro train@bugs_cnn` to write it again"
    )


CRAFTED = {
    "format 3": (lambda saved: saved.update(format=3), "another version (format 3)"),
    "size as text": (lambda saved: saved.update(size="16"), "size: Input should be a valid integer"),
    "no classes": (lambda saved: saved.pop("classes"), "classes: Field required"),
    "a preprocessing colour": (
        lambda saved: saved["preprocessing"].update(color="cmyk"), "preprocessing: color: 'cmyk' is not gray or rgb"
    ),
    "a preprocessing key missing": (
        lambda saved: saved["preprocessing"].pop("resize"), "preprocessing.resize: Field required"
    ),
    "a mean per pixel": (lambda saved: saved["preprocessing"].update(mean=[0.4]), "mean and std: 1 and 3 values"),
    "an unknown architecture": (lambda saved: saved.update(arch="gpt"), "unknown architecture 'gpt'"),
    "weights of another shape": (
        lambda saved: saved["state_dict"].update({next(iter(saved["state_dict"])): torch.zeros(1)}),
        "its weights do not fit its architecture",
    ),
}


@pytest.mark.parametrize("change", CRAFTED.values(), ids=CRAFTED.keys())
def test_a_crafted_model_file_is_refused_naming_it_and_the_stage_to_rerun(model_file, change):
    edit, problem = change
    rewritten(model_file, edit)
    with pytest.raises(PipelineError) as error:
        load_model(model_file)
    message = str(error.value)
    assert message.startswith(f"{model_file}: ")
    assert problem in message
    assert message.endswith("re-run `dvc repro train@bugs_cnn` to write it again")
    assert "\n" not in message


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"size": 0}, "size: 0 is not a positive number of pixels"),
        ({"resize": "stretch"}, "resize: 'stretch' is not squash, crop, pad"),
        ({"std": [0.0]}, "std: [0.0] has a value that is not positive"),
        ({"classes": ["one"]}, "classes: ['one'] are not two or more distinct names"),
        ({"normalize": "yes"}, "preprocessing.normalize: Input should be a valid boolean"),
        ({"mean": [float("nan")]}, "preprocessing: not plain data"),
    ],
)
def test_preprocessing_from_a_dict_names_what_is_wrong(changes, problem):
    good = {"size": 8, "color": "gray", "resize": "crop", "normalize": False, "mean": [0.5], "std": [0.5],
            "classes": ["a", "b"]}
    assert Preprocessing.from_dict(good).to_dict() == good
    with pytest.raises(PipelineError, match=re.escape(problem)):
        Preprocessing.from_dict({**good, **changes})


def test_non_default_params_compares_train_aug_and_the_architectures_own_args_with_their_defaults():
    saved = SavedModel.model_construct(**{
        "arch": "cifar_cnn",
        "train": TrainParams(lr=0.01, optimizer="sgd").model_dump(mode="json"),
        "aug": AugParams(hflip=0.5).model_dump(mode="json"),
        "arch_args": ARCH_ARGS["cifar_cnn"](batchnorm=True, widths=(32, 64, 128)).model_dump(mode="json"),
    })
    assert saved.non_default_params() == [
        ("train.optimizer", "sgd", "adam"),
        ("train.lr", 0.01, 0.001),
        ("aug.hflip", 0.5, 0),
        ("arch.batchnorm", True, False),
    ]
