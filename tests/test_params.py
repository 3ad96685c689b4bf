import re
from pathlib import Path

import pytest
import yaml

from pipeline.config.datasets import PreprocessParams, SplitParams
from pipeline.config.params import load_params, parse_params
from pipeline.core.errors import PipelineError
from tests.helpers.params import TINY, changed, repo_params, tiny_full, tiny_raw


def test_repo_params_parse_with_documented_defaults():
    params = parse_params(repo_params())

    assert params.seed == 42
    split = params.split["catsdogs"]
    assert (split.train, split.val, split.test) == (1000, 500, 500)
    pre = params.preprocess["catsdogs"]
    assert (pre.image_size, pre.color) == (80, "gray")
    assert params.train.batch_size == 32
    assert params.data["catsdogs"].source == "sample"


def test_repo_model_has_its_architecture_args_and_overrides_train_keys():
    raw = repo_params()
    raw["data"]["catsdogs"]["source"] = "kaggle"
    model = parse_params(raw).model("catsdogs_cnn")

    assert model.dataset == "catsdogs"
    assert model.arch_args.dropout == (0.25, 0.25, 0.5)
    assert model.arch_args.dense == 32
    assert model.train.epochs == raw["models"]["catsdogs_cnn"]["epochs"]
    assert model.train.epochs != raw["train"]["epochs"]


def test_model_block_overrides_train_keys_and_keeps_the_rest():
    params = parse_params(tiny_raw(**{"models.catsdogs_cnn.lr": 0.05, "models.catsdogs_cnn.epochs": 7}))
    train = params.model("catsdogs_cnn").train

    assert train.lr == 0.05
    assert train.epochs == 7
    assert train.batch_size == TINY["train"]["batch_size"]
    assert params.train.lr == TINY["train"]["lr"]


def test_model_aug_block_overrides_global_aug():
    params = parse_params(tiny_raw(**{"aug.rotation": 10, "models.catsdogs_cnn.aug": {"hflip": 0.5}}))
    aug = params.model("catsdogs_cnn").aug

    assert (aug.rotation, aug.hflip) == (10, 0.5)


def test_unknown_model_name_lists_the_known_ones(tiny_params):
    with pytest.raises(PipelineError, match="unknown model 'nope'.*catsdogs_cnn"):
        tiny_params.model("nope")


@pytest.mark.parametrize(
    ("changes", "pattern"),
    [
        ({"split.catsdogs.test": -1}, r"split\.catsdogs\.test"),
        ({"aug.hflip": 1.5}, r"aug\.hflip"),
        ({"aug.policy": "autoaugment"}, r"aug\.policy"),
        ({"aug.erasing": 1.5}, r"aug\.erasing"),
        ({"models.catsdogs_cnn.aug": {"policy": "trivial"}}, r"models\.catsdogs_cnn\.aug\.policy"),
        ({"data.catsdogs.source": "ftp"}, r"data\.catsdogs\.source"),
        ({"train.optimizer": "rmsprop"}, r"train\.optimizer"),
        ({"train.device": "gpu"}, r"train\.device"),
        ({"train.device": "cuda:x"}, r"train\.device"),
        ({"train.workers": -1}, r"train\.workers"),
        ({"train.workers": "many"}, r"train\.workers"),
        ({"train.data_on_device": "maybe"}, r"train\.data_on_device"),
        ({"preprocess.catsdogs.color": "cmyk"}, r"preprocess\.catsdogs\.color"),
        ({"models.catsdogs_cnn.dropout": [0.2, 0.2]}, r"models\.catsdogs_cnn\.dropout"),
        ({"models.catsdogs_cnn.dropout": [0.2, 0.2, 1.2]}, r"models\.catsdogs_cnn\.dropout"),
        ({"models.catsdogs_cnn.device": "tpu"}, r"models\.catsdogs_cnn\.device"),
        ({"models.catsdogs_cnn.aug": {"hflip": 2}}, r"models\.catsdogs_cnn\.aug\.hflip"),
    ],
)
def test_bad_value_is_reported_with_its_dotted_key(changes, pattern):
    with pytest.raises(PipelineError, match=pattern):
        parse_params(tiny_raw(**changes))


def test_a_split_on_the_device_refuses_augmentation_it_cannot_do_there_naming_the_key():
    raw = tiny_raw(**{"train.data_on_device": True, "aug.hflip": 0.5, "aug.crop_padding": 4, "aug.shift": 0.1})
    assert parse_params(raw).model("catsdogs_cnn").train.data_on_device
    with pytest.raises(PipelineError, match=r"models\.catsdogs_cnn: data_on_device .* aug\.rotation is on"):
        parse_params(tiny_raw(**{"train.data_on_device": True, "aug.rotation": 10}))
    per_image = {"aug.policy": "trivialaugment", "aug.erasing": 0.25}
    with pytest.raises(PipelineError, match=r"data_on_device .* aug\.policy, aug\.erasing are on"):
        parse_params(tiny_raw(**{"train.data_on_device": True, **per_image}))


def test_bad_value_error_shows_the_offending_value():
    with pytest.raises(PipelineError, match=r"aug\.hflip.*1\.5"):
        parse_params(tiny_raw(**{"aug.hflip": 1.5}))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"train.epochs": "ten"}, "train.epochs: Input should be a valid integer"),
        ({"train.epochs": True}, "train.epochs: Input should be a valid integer (got True)"),
        ({"aug.rotation": True}, "aug.rotation: Input should be a valid number (got True)"),
        ({"train.lr": "0.1"}, "train.lr: Input should be a valid number (got '0.1')"),
        ({"seed": 4.5}, "seed: Input should be a valid integer (got 4.5)"),
        ({"preprocess.catsdogs.normalize": "maybe"}, "preprocess.catsdogs.normalize: Input should be a valid boolean"),
        ({"models.catsdogs_cnn.dropout": [True, 0, 0]}, "models.catsdogs_cnn.dropout.0: Input should be a valid"),
    ],
)
def test_a_value_of_the_wrong_type_is_an_error_not_a_conversion(changes, message):
    with pytest.raises(PipelineError, match=re.escape(message)):
        parse_params(tiny_raw(**changes))


def test_an_integer_is_a_valid_float_and_a_list_a_valid_tuple():
    params = parse_params(tiny_raw(**{"aug.rotation": 20, "models.catsdogs_cnn.dropout": [0, 0, 1]}))

    assert params.aug.rotation == 20.0
    assert params.model("catsdogs_cnn").arch_args.dropout == (0, 0, 1)


def test_steps_per_epoch_is_all_the_batches_by_default_and_at_least_one_when_set():
    assert parse_params(tiny_raw()).train.steps_per_epoch is None
    assert parse_params(tiny_raw(**{"train.steps_per_epoch": 3})).model("catsdogs_cnn").train.steps_per_epoch == 3
    with pytest.raises(PipelineError, match=re.escape("train.steps_per_epoch: Input should be greater than or equal to 1")):
        parse_params(tiny_raw(**{"train.steps_per_epoch": 0}))


def test_an_out_of_range_value_names_the_key_the_bound_and_the_value():
    with pytest.raises(PipelineError, match=re.escape("train.lr: Input should be greater than 0 (got -0.1)")):
        parse_params(tiny_raw(**{"train.lr": -0.1}))


def test_an_unknown_source_lists_the_valid_ones():
    with pytest.raises(PipelineError, match=r"data\.catsdogs\.source: Input should be 'sample', 'kaggle', 'local' or 'hf'"):
        parse_params(tiny_raw(**{"data.catsdogs.source": "kagle"}))


def test_typo_in_aug_suggests_the_right_key():
    with pytest.raises(PipelineError, match=r"aug\.rotaton: unknown key; did you mean 'rotation'"):
        parse_params(tiny_raw(**{"aug.rotaton": 20}))


def test_typo_in_model_block_suggests_the_right_key():
    with pytest.raises(PipelineError, match=r"models\.catsdogs_cnn\.epoch: unknown key; did you mean 'epochs'"):
        parse_params(tiny_raw(**{"models.catsdogs_cnn.epoch": 3}))


def test_typo_in_data_block_suggests_the_right_key():
    with pytest.raises(PipelineError, match=r"data\.catsdogs\.sourc: unknown key; did you mean 'source'"):
        parse_params(tiny_raw(**{"data.catsdogs.sourc": "sample"}))


def test_local_source_without_path_is_an_error():
    with pytest.raises(PipelineError, match=r"data\.catsdogs\b.*needs 'path'"):
        parse_params(tiny_raw(**{"data.catsdogs.source": "local"}))


def test_local_source_with_path_is_accepted():
    params = parse_params(tiny_raw(**{"data.catsdogs.source": "local", "data.catsdogs.path": "train.zip"}))

    assert params.data["catsdogs"].path == "train.zip"


def test_builtin_makes_another_dataset_a_copy_of_a_built_in_one_with_its_sources_and_keys():
    params = parse_params(tiny_raw(**{"data.cats_rgb": {"builtin": "catsdogs", "sample_per_class": 50}}))

    copy, original = params.data["cats_rgb"], params.data["catsdogs"]
    assert type(copy) is type(original) and copy.source == "sample" and copy.sample_per_class == 50
    assert (copy.layout, copy.classes) == (original.layout, original.classes)


def test_an_unknown_builtin_is_an_error_naming_the_key_and_the_built_in_names():
    with pytest.raises(PipelineError, match=r"data\.pets\.builtin: .*'catsdogs', 'cifar10' or 'iris'"):
        parse_params(tiny_raw(**{"data.pets": {"builtin": "dogs", "path": "x"}}))


def test_unknown_architecture_is_an_error():
    with pytest.raises(PipelineError, match=r"models\.catsdogs_cnn\.arch: unknown architecture 'resnet'"):
        parse_params(tiny_raw(**{"models.catsdogs_cnn.arch": "resnet"}))


def test_model_dataset_must_be_under_data():
    with pytest.raises(PipelineError, match=r"models\.catsdogs_cnn\.dataset: 'cifar10' is not a dataset"):
        parse_params(tiny_raw(**{"models.catsdogs_cnn.dataset": "cifar10"}))


def test_a_dataset_without_split_or_preprocess_blocks_gets_the_defaults():
    params = parse_params(tiny_raw(split={}, preprocess={}))
    assert params.split["catsdogs"] == SplitParams()
    assert params.preprocess["catsdogs"] == PreprocessParams()


def test_a_new_dataset_name_is_the_users_own_images_at_a_path():
    params = parse_params(tiny_raw(**{"data.pets": {"source": "local", "path": "/data/pets"}}))
    assert (params.data["pets"].path, params.data["pets"].layout, params.data["pets"].classes) == ("/data/pets", "auto", None)
    assert params.split["pets"].val == 0.15 and params.preprocess["pets"].color == "rgb"


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"source": "sample"}, r"data\.dogs\.source: Input should be 'local'"),
        ({"source": "local"}, r"data\.dogs: .*needs 'path'"),
        ({"path": "x", "layot": "auto"}, r"data\.dogs\.layot: unknown key; did you mean 'layout'"),
    ],
)
def test_a_bad_block_for_a_new_dataset_names_the_key(block, message):
    with pytest.raises(PipelineError, match=message):
        parse_params(tiny_raw(**{"data.dogs": block}))


def test_a_split_block_for_a_dataset_that_is_not_there_is_an_error():
    with pytest.raises(PipelineError, match=r"split\.pets: no such dataset under `data` \(catsdogs"):
        parse_params(tiny_raw(**{"split.pets": {"val": 0.2}}))


@pytest.mark.parametrize(
    ("split", "message"),
    [
        ({"val": 0}, r"split\.catsdogs\.val: .*expected an int >= 1 \(images per class\) or a float in \(0, 1\)"),
        ({"test": 1.5}, r"split\.catsdogs\.test: .*expected an int"),
        ({"val": True}, r"split\.catsdogs\.val: .*expected an int"),
        ({"train": None, "val": 0.5, "test": 0.5}, r"split\.catsdogs: .*fractions add up to 1"),
    ],
)
def test_bad_split_sizes_name_the_key(split, message):
    with pytest.raises(PipelineError, match=message):
        parse_params(tiny_raw(**{"split.catsdogs": split}))


def test_val_fraction_is_the_older_name_of_a_fractional_val():
    assert parse_params(tiny_raw(**{"split.catsdogs": {"val_fraction": 0.2}})).split["catsdogs"].val == 0.2


def write_params(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw))
    return path


def test_load_params_applies_overrides(tmp_path):
    path = write_params(tmp_path / "params.yaml", tiny_raw())

    params = load_params(path, overrides=["aug.rotation=20", "models.catsdogs_cnn.lr=0.01", "train.optimizer=sgd"])

    assert params.aug.rotation == 20
    assert params.model("catsdogs_cnn").train.lr == 0.01
    assert params.train.optimizer == "sgd"


def test_load_params_validates_overridden_values(tmp_path):
    path = write_params(tmp_path / "params.yaml", tiny_raw())

    with pytest.raises(PipelineError, match=r"aug\.hflip"):
        load_params(path, overrides=["aug.hflip=3"])


def test_an_override_may_add_a_key_in_dvc_plus_form(tmp_path):
    path = write_params(tmp_path / "params.yaml", tiny_raw())
    steps = "[{lr: 0.1, epochs: 2}, {lr: 0.01, epochs: 1}]"

    params = load_params(path, overrides=[f"+models.catsdogs_cnn.lr_schedule={steps}"])

    assert [(step.lr, step.epochs) for step in params.model("catsdogs_cnn").train.lr_schedule] == [(0.1, 2), (0.01, 1)]


@pytest.mark.parametrize("override", ["aug.rotation", "=20", "+=20"])
def test_malformed_override_is_an_error(tmp_path, override):
    path = write_params(tmp_path / "params.yaml", tiny_raw())

    with pytest.raises(PipelineError, match=r"expected key=value"):
        load_params(path, overrides=[override])


def test_override_below_a_scalar_is_an_error(tmp_path):
    path = write_params(tmp_path / "params.yaml", tiny_raw())

    with pytest.raises(PipelineError, match=r"'seed' is not a block"):
        load_params(path, overrides=["seed.value=1"])


def test_missing_params_file_names_the_path(tmp_path):
    missing = tmp_path / "nowhere" / "params.yaml"

    with pytest.raises(PipelineError, match=re.escape(str(missing)) + ".*not found"):
        load_params(missing)


def test_invalid_yaml_names_the_path(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("seed: [1, 2\naug: {\n")

    with pytest.raises(PipelineError, match=re.escape(str(path)) + ": not valid YAML"):
        load_params(path)


def test_validation_error_names_the_params_file(tmp_path):
    path = write_params(tmp_path / "custom.yaml", tiny_raw(**{"aug.hflip": 2}))

    with pytest.raises(PipelineError, match=re.escape(str(path)) + r": aug\.hflip"):
        load_params(path)


def test_exponent_numbers_read_as_numbers_as_dvc_writes_them(tmp_path):
    raw = tiny_raw(**{"models.catsdogs_cnn.lr": 0.00001})
    plain = write_params(tmp_path / "plain.yaml", raw)
    exponent = tmp_path / "exponent.yaml"
    exponent.write_text(plain.read_text().replace("lr: 1.0e-05", "lr: 1e-05"))
    assert "lr: 1e-05" in exponent.read_text()

    assert load_params(exponent) == load_params(plain)


def test_a_pretrained_model_of_gray_images_is_refused_naming_the_keys_before_any_weights_are_fetched():
    raw = tiny_raw(**{"models.gray_vgg": {"dataset": "catsdogs", "arch": "vgg16", "pretrained": True}})
    with pytest.raises(PipelineError, match=r"models\.gray_vgg\.pretrained: .* preprocess\.catsdogs\.color is gray; set"):
        parse_params(raw)


def test_a_pretrained_model_of_a_table_is_refused_naming_the_key():
    raw = changed(tiny_full(), {"models.iris_vgg": {"dataset": "iris", "arch": "vgg16", "pretrained": True}})
    with pytest.raises(PipelineError, match=r"models\.iris_vgg\.pretrained: .* 'iris' is a table"):
        parse_params(raw)
