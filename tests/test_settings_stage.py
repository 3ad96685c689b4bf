"""Stage `settings`: each dataset's split, preprocess and aug blocks with the defaults filled in (`aug` empty for a
table), the files split, preprocess and train depend on, so that optional blocks work and only what changed re-runs."""

import json

import pytest
import yaml

from pipeline.config.params import parse_params
from pipeline.core.errors import PipelineError
from pipeline.stages.settings import settings
from tests.helpers.params import changed, repo_params


def params_with(**changes: object) -> dict:
    """The repository's params with a dataset of the user's own (`pets`) and `block__key=value` changes."""
    raw = repo_params()
    raw["data"]["pets"] = {"source": "local", "path": "/data/pets"}
    return changed(raw, {key.replace("__", "."): value for key, value in changes.items()})


def test_a_dataset_without_split_or_preprocess_blocks_gets_the_defaults(paths):
    written = settings("pets", parse_params(params_with()), paths)

    assert written["split"] == {
        "train": None, "val": 0.15, "test": 0.15, "seed": 42,
        "max_train_per_class": None, "max_val_per_class": None, "max_test_per_class": None,
        "exclude": None, "relabel": None, "near_duplicates": "drop_across", "near_duplicates_found_by": None,
    }
    assert written["preprocess"] == {"image_size": 80, "color": "rgb", "resize": "squash", "normalize": True}
    assert json.loads(paths.settings_file("pets", "split").read_text()) == written["split"]


def test_an_image_dataset_gets_the_aug_block_and_a_table_gets_none(paths):
    params = parse_params(params_with(aug__rotation=20, aug__hflip=0.5))
    assert settings("catsdogs", params, paths)["aug"] == params.aug.model_dump(mode="json")
    assert json.loads(paths.settings_file("catsdogs", "aug").read_text())["rotation"] == 20
    assert settings("iris", params, paths)["aug"] == {}


def test_a_change_rewrites_only_the_files_it_touches(paths):
    settings("cifar10", parse_params(params_with()), paths)
    before = {block: paths.settings_file("cifar10", block).read_bytes() for block in ("split", "preprocess", "aug")}

    settings("cifar10", parse_params(params_with(seed=7, aug__rotation=10, preprocess__catsdogs__image_size=64)), paths)

    after = {block: paths.settings_file("cifar10", block).read_bytes() for block in ("split", "preprocess", "aug")}
    assert after["split"] == before["split"]  # its own seed, 43, not the global one
    assert after["preprocess"] == before["preprocess"]
    assert after["aug"] != before["aug"]


def test_a_split_without_its_own_seed_follows_the_global_seed(paths):
    settings("catsdogs", parse_params(params_with(seed=7)), paths)
    assert json.loads(paths.settings_file("catsdogs", "split").read_text())["seed"] == 7


def test_an_audit_block_makes_the_split_look_for_near_duplicates(paths):
    params = parse_params(params_with(
        models__pets_cnn={"dataset": "pets", "arch": "catsdogs_cnn"},
        audit__pets={"model": "pets_cnn", "label_issues": False, "neighbours": 5},
    ))
    assert settings("pets", params, paths)["split"]["near_duplicates_found_by"] == [5, 0.9]
    assert settings("catsdogs", params, paths)["split"]["near_duplicates_found_by"] is None


def _lock(paths, raw: dict, dataset: str) -> None:
    """A dvc.lock whose settings@<dataset> and train@<model> entries (every model of the dataset) recorded `raw`."""
    stages = {f"settings@{dataset}": {"params": {"params.yaml": {"aug": raw["aug"]}}}}
    for model, block in raw["models"].items():
        if block["dataset"] == dataset:
            stages[f"train@{model}"] = {"params": {"params.yaml": {f"models.{model}": block}}}
    paths.lock_file().write_text(yaml.safe_dump({"schema": "2.0", "stages": stages}))


def test_a_top_level_aug_change_a_models_own_aug_block_shadows_stops_the_stage_before_any_file(paths):
    _lock(paths, params_with(), "cifar10")
    with pytest.raises(PipelineError, match=r"aug\.hflip changed to 0.25 .* set models\.cifar_\w+\.aug\.hflip=0.25"):
        settings("cifar10", parse_params(params_with(aug__hflip=0.25)), paths)
    assert not paths.settings_file("cifar10", "aug").exists()


def test_a_top_level_aug_change_that_takes_effect_goes_through(paths):
    _lock(paths, params_with(), "cifar10")
    assert settings("cifar10", parse_params(params_with(aug__rotation=20)), paths)["aug"]["rotation"] == 20


def _lock_blocks(paths, raw: dict, dataset: str) -> None:
    """A dvc.lock whose settings@<dataset> entry recorded the dataset's `data` block and the whole `split` block."""
    entry = {f"data.{dataset}": raw["data"][dataset], "split": raw["split"]}
    stages = {f"settings@{dataset}": {"params": {"params.yaml": entry}}}
    paths.lock_file().write_text(yaml.safe_dump({"schema": "2.0", "stages": stages}))


def _brings(paths, dataset: str, *parts: str) -> None:
    """A raw samples file whose samples come in `parts` ("" for the pool)."""
    folder = paths.raw_samples(dataset).parent
    folder.mkdir(parents=True, exist_ok=True)
    rows = "".join(f"{part}/a.png,a,{part},x,\n" for part in parts)
    paths.raw_samples(dataset).write_text("path,class,part,sha256,skip\n" + rows)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"data__catsdogs__sample_per_class": 500}, r"data\.catsdogs\.sample_per_class: changed since the last run, but "
         r"only source sample reads it \(data\.catsdogs\.source is kaggle\); set data\.catsdogs\.source=sample"),
        ({"data__catsdogs__path": "/data/cats"}, r"data\.catsdogs\.path: .* only source local reads it"),
    ],
)
def test_a_changed_data_key_the_source_never_reads_stops_the_stage(paths, change, message):
    _lock_blocks(paths, params_with(data__catsdogs__source="kaggle"), "catsdogs")
    with pytest.raises(PipelineError, match=message):
        settings("catsdogs", parse_params(params_with(data__catsdogs__source="kaggle", **change)), paths)


def test_switching_the_source_lets_its_own_keys_change_with_it(paths):
    _lock_blocks(paths, params_with(), "catsdogs")
    new = params_with(data__catsdogs__source="local", data__catsdogs__path="/data/cats", data__catsdogs__sample_per_class=5)
    settings("catsdogs", parse_params(new), paths)


def test_the_size_of_a_part_the_dataset_brings_stops_the_stage_and_its_cap_goes_through(paths):
    _lock_blocks(paths, params_with(), "cifar10")
    _brings(paths, "cifar10", "train", "test")
    with pytest.raises(PipelineError, match=r"split\.cifar10\.test: .* cifar10 brings its own test part, used as given; "
                       r"cap it with split\.cifar10\.max_test_per_class instead"):
        settings("cifar10", parse_params(params_with(split__cifar10__test=0.2)), paths)
    settings("cifar10", parse_params(params_with(split__cifar10__max_test_per_class=50)), paths)


def test_the_cap_of_a_part_drawn_from_the_pool_stops_the_stage(paths):
    _lock_blocks(paths, params_with(), "catsdogs")
    _brings(paths, "catsdogs", "")
    with pytest.raises(PipelineError, match=r"split\.catsdogs\.max_val_per_class: .* catsdogs brings no val part to cap"):
        settings("catsdogs", parse_params(params_with(split__catsdogs__max_val_per_class=100)), paths)
