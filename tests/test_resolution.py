"""Where each of a model's resolved settings comes from (`resolved_keys`), the table and the metrics record of them,
and the check that stops a stage when a changed key is shadowed by a more specific one."""

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli.main import app
from pipeline.config.archs import ARCH_ARGS
from pipeline.config.evaluation import EvaluateParams
from pipeline.config.overrides import apply_override, read_yaml
from pipeline.config.params import Params, parse_params
from pipeline.config.resolution import (
    DEFAULT,
    TABLE_OFF,
    ResolvedKey,
    check_overrides,
    locked_params,
    read_lock,
    resolved_keys,
    resolved_record,
    settings_table,
    settings_text,
    silent_overrides,
)
from pipeline.config.training import AugParams, TrainParams
from pipeline.core.errors import PipelineError
from tests.helpers.params import REPO

RAW = read_yaml((REPO / "params.yaml").read_text())
BN = "cifar_cnn_bn"


def _raw(*overrides: str, real: bool = False) -> dict[str, Any]:
    """The repository's params, `-S` overrides applied; `real`: every image dataset's source switched to real data."""
    raw = copy.deepcopy(RAW)
    for dataset, block in raw["data"].items():
        if real and block.get("source", "sample") == "sample":
            block.update(source="local" if dataset.startswith("catsdogs") else "torchvision", path="/data/real")
    for item in overrides:
        apply_override(raw, item)
    return raw


def _params(*overrides: str, real: bool = False) -> Params:
    return parse_params(_raw(*overrides, real=real))


def _locked(raw: dict[str, Any], model: str) -> dict[str, Any]:
    """The params entries dvc.lock records for `train@<model>`, as DVC writes them: the raw values."""
    dataset = raw["models"][model]["dataset"]
    entries = {"seed": raw["seed"], "train": raw["train"], f"models.{model}": raw["models"][model]}
    return copy.deepcopy({**entries, f"data.{dataset}": raw["data"][dataset]})


def _at(raw: dict[str, Any], dotted: str) -> Any:
    node = raw
    for part in dotted.split("."):
        node = node[part]
    return node


def _sources(params: Params, model: str) -> dict[str, str]:
    return {key.key: key.source for key in resolved_keys(params, model)}


def _class_defaults(arch: str) -> dict[str, Any]:
    return {
        **ARCH_ARGS[arch]().model_dump(mode="json"),
        **TrainParams().model_dump(mode="json"),
        **{f"aug.{key}": value for key, value in AugParams().model_dump(mode="json").items()},
        **{f"evaluate.{key}": value for key, value in EvaluateParams().model_dump(mode="json").items()},
    }


@pytest.mark.parametrize("real", [False, True], ids=["sample", "real"])
@pytest.mark.parametrize("model", list(RAW["models"]))
def test_every_value_is_the_model_configs_and_its_source_sets_it(model, real):
    raw = _raw(real=real)
    params = parse_params(raw)
    config = params.model(model)
    resolved = {key.key: key for key in resolved_keys(params, model)}
    expected = {
        **config.arch_args.model_dump(mode="json"),
        **config.train.model_dump(mode="json"),
        **{f"aug.{key}": value for key, value in config.aug.model_dump(mode="json").items()},
        **{f"evaluate.{key}": value for key, value in config.evaluate.model_dump(mode="json").items()},
    }
    assert {key: item.value for key, item in resolved.items()} == expected
    defaults = _class_defaults(config.arch)
    for key, item in resolved.items():
        if item.source == DEFAULT:
            assert item.value == defaults[key], key
        elif item.source != TABLE_OFF:
            assert _at(raw, item.source) == item.value, (key, item.source)
            assert not real or ".sample." not in item.source, (key, item.source)


def test_on_the_sample_the_budget_the_block_and_train_each_set_their_keys():
    sources = _sources(_params(), BN)
    assert sources["epochs"] == f"models.{BN}.sample.epochs"
    assert sources["lr_schedule"] == f"models.{BN}.sample.lr_schedule"
    assert sources["batch_size"] == f"models.{BN}.batch_size"
    assert sources["lr"] == "train.lr"
    assert sources["dropout"] == f"models.{BN}.dropout"
    assert sources["aug.hflip"] == f"models.{BN}.aug.hflip"
    assert sources["aug.rotation"] == "aug.rotation"
    assert sources["evaluate.tta"] == "evaluate.tta"
    assert _sources(_params(), "cifar_vgg16")["pretrained"] == "models.cifar_vgg16.sample.pretrained"


def test_on_the_real_data_the_block_sets_what_its_budget_did():
    sources = _sources(_params(real=True), BN)
    assert sources["epochs"] == f"models.{BN}.epochs"
    assert sources["lr_schedule"] == f"models.{BN}.lr_schedule"
    assert _sources(_params(real=True), "cifar_vgg16")["pretrained"] == "models.cifar_vgg16.pretrained"


def test_a_sample_budgets_aug_key_is_named_with_its_block():
    sources = _sources(_params(f"models.{BN}.sample.aug={{hflip: 0.2}}"), BN)
    assert sources["aug.hflip"] == f"models.{BN}.sample.aug.hflip"
    assert sources["aug.crop_padding"] == f"models.{BN}.aug.crop_padding"


def test_a_key_no_params_key_sets_is_the_default():
    raw = _raw()
    del raw["train"]["ema"], raw["models"][BN]["bn_momentum"]
    sources = _sources(parse_params(raw), BN)
    assert sources["ema"] == sources["bn_momentum"] == DEFAULT


def test_a_table_models_image_only_settings_say_they_are_off():
    params = _params("train.cutmix=1.0", "evaluate.tta=flip")
    keys = {key.key: key for key in resolved_keys(params, "iris_mlp")}
    assert keys["cutmix"] == ResolvedKey("cutmix", 0.0, TABLE_OFF)
    assert keys["evaluate.tta"] == ResolvedKey("evaluate.tta", "none", TABLE_OFF)
    assert _sources(params, "cifar_mlp")["cutmix"] == "train.cutmix"


def test_the_table_has_a_row_per_key_and_the_text_the_sample_hint():
    params = _params()
    table = settings_table(resolved_keys(params, BN)).splitlines()
    assert table[0].split() == ["key", "value", "from"]
    assert f"models.{BN}.sample.epochs" in next(line for line in table if line.startswith("epochs "))
    assert len(table) == 1 + len(resolved_keys(params, BN))
    hint = f"on the sample: keys from models.{BN}.sample; set those to change this run"
    assert settings_text(params, BN).endswith(hint)
    assert "on the sample" not in settings_text(_params(real=True), BN)
    assert "on the sample" not in settings_text(params, "iris_mlp")


def test_the_record_keeps_scalars_and_writes_lists_and_nulls_as_json_text():
    record = resolved_record(resolved_keys(_params(), BN))
    assert record["epochs"] == 8 and record["batchnorm"] is True and record["lr_schedule"] == "constant"
    assert record["widths"] == "[32, 64, 128]" and record["patience"] == "null"
    assert record["from"]["epochs"] == f"models.{BN}.sample.epochs"
    assert json.loads(json.dumps(record)) == record


def test_a_change_the_sample_budget_shadows_stops_the_stage_naming_the_key_to_set():
    params = _params(f"models.{BN}.epochs=12")
    problems = silent_overrides(params, BN, _locked(_raw(), BN))
    assert problems == [
        f"models.{BN}.epochs changed to 12 since the last run, but on the sample (data.cifar10.source: sample) "
        f"models.{BN}.sample.epochs (8) is what trains: set models.{BN}.sample.epochs=12 instead (and put "
        f"models.{BN}.epochs back), or switch data.cifar10.source to the real data"
    ]
    with pytest.raises(PipelineError, match=rf"set models\.{BN}\.sample\.epochs=12 instead"):
        check_overrides(params, BN, _locked(_raw(), BN))


@pytest.mark.parametrize(
    "overrides",
    [
        (f"models.{BN}.dropout=[0.1, 0.1, 0.1, 0.1]",),
        (f"models.{BN}.sample.epochs=12",),
        (f"models.{BN}.epochs=12", f"models.{BN}.sample.epochs=12"),
        ("train.optimizer=sgd",),
        (f"models.{BN}.aug.hflip=0.2",),
        ("data.cifar10.source=torchvision", f"models.{BN}.epochs=12"),
    ],
    ids=["arch-arg", "the-budget-itself", "shadowing-key-too", "train-key-nothing-shadows", "own-aug", "real"],
)
def test_a_change_that_takes_effect_runs(overrides):
    check_overrides(_params(*overrides), BN, _locked(_raw(), BN))


def test_with_nothing_to_compare_nothing_stops():
    params = _params(f"models.{BN}.epochs=12")
    assert silent_overrides(params, BN, None) == []
    assert silent_overrides(params, BN, {}) == []


def test_a_train_key_a_model_block_sets_stops_naming_the_blocks_key():
    problems = silent_overrides(_params("train.lr=0.01"), "iris_mlp", _locked(_raw(), "iris_mlp"))
    assert problems == [
        "train.lr changed to 0.01 since the last run, but models.iris_mlp.lr (0.0005) sets this model's lr: set "
        "models.iris_mlp.lr=0.01 instead, or remove models.iris_mlp.lr so that train.lr applies"
    ]
    assert silent_overrides(_params("train.lr=0.01"), BN, _locked(_raw(), BN)) == []  # its block leaves lr to train


def test_a_train_key_the_budget_shadows_names_the_budgets_key():
    (problem,) = silent_overrides(_params("train.epochs=12"), BN, _locked(_raw(), BN))
    assert problem.startswith("train.epochs changed to 12 since the last run, but on the sample")
    assert problem.endswith(f"models.{BN}.sample.epochs (8) is what trains: set models.{BN}.sample.epochs=12 instead")


def test_a_budget_key_changed_while_the_model_trains_on_real_data_stops():
    locked = _locked(_raw(real=True), BN)
    (problem,) = silent_overrides(_params(f"models.{BN}.sample.epochs=3", real=True), BN, locked)
    assert f"models.{BN}.sample applies only while data.cifar10.source is sample (it is torchvision)" in problem
    assert problem.endswith(f"models.{BN}.epochs (30) is what trains: set models.{BN}.epochs=3 instead")


def test_a_top_level_key_a_table_ignores_does_not_stop_it():
    assert silent_overrides(_params("train.cutmix=1.0"), "iris_mlp", _locked(_raw(), "iris_mlp")) == []


def test_an_evaluate_key_the_block_sets_stops_the_evaluate_check():
    raw = _raw()
    locked = {"evaluate": raw["evaluate"], "models.cifar_best": raw["models"]["cifar_best"]}
    (problem,) = silent_overrides(_params("evaluate.tta=flip"), "cifar_best", locked)
    assert "models.cifar_best.evaluate.tta (flip_shift) sets this model's evaluate.tta" in problem


def test_locked_params_reads_the_stages_entry_of_dvc_lock(tmp_path: Path):
    lock = tmp_path / "dvc.lock"
    assert locked_params(lock, f"train@{BN}") is None
    entry = {"cmd": "x", "params": {"params.yaml": _locked(_raw(), BN)}}
    lock.write_text(yaml.safe_dump({"schema": "2.0", "stages": {f"train@{BN}": entry}}))
    assert locked_params(lock, f"train@{BN}") == _locked(_raw(), BN)
    assert locked_params(lock, "train@cifar_mlp") is None


def test_read_lock_parses_only_the_named_stages_entries_as_the_whole_file_has_them(tmp_path: Path):
    lock = tmp_path / "dvc.lock"
    entries = {f"train@{model}": {"cmd": "x", "params": {"params.yaml": _locked(_raw(), model)}} for model in RAW["models"]}
    lock.write_text(yaml.safe_dump({"schema": "2.0", "stages": entries}, sort_keys=False))
    whole = read_lock(lock)
    for stage in entries:
        assert read_lock(lock, stage)["stages"] == {stage: whole["stages"][stage]}
    assert read_lock(lock, "train@nowhere") == whole  # a stage it cannot find alone: the whole file


def test_pipeline_params_prints_the_table():
    result = CliRunner().invoke(
        app, ["params", BN, "--params", str(REPO / "params.yaml"), "-S", f"models.{BN}.sample.epochs=12"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"{BN}: cifar_cnn on cifar10"
    assert lines[1].split() == ["key", "value", "from"]
    epochs = next(line for line in lines if line.startswith("epochs ")).split()
    assert epochs == ["epochs", "12", f"models.{BN}.sample.epochs"]
    assert lines[-1] == f"on the sample: keys from models.{BN}.sample; set those to change this run"


def test_pipeline_params_names_an_unknown_model():
    result = CliRunner().invoke(app, ["params", "nope", "--params", str(REPO / "params.yaml")])
    assert result.exit_code == 1
    assert "unknown model 'nope'" in result.output
