"""The embedded sample's budget (`models.<model>.sample`): laid over a model block while its dataset's source is
`sample`, and never otherwise."""

import copy
from typing import Any, get_args

import pytest

from pipeline.config.params import parse_params
from pipeline.core.errors import PipelineError
from tests.helpers.params import repo_params, tiny_raw


def _without_sample(raw: dict[str, Any]) -> dict[str, Any]:
    bare = copy.deepcopy(raw)
    for block in bare["models"].values():
        block.pop("sample", None)
    return bare


def _other_sources(raw: dict[str, Any]) -> list[tuple[str, str]]:
    """Every (dataset, source) of the repository's params whose source is not the sample."""
    params = parse_params(raw)
    return [
        (name, source)
        for name, block in params.data.items()
        for source in get_args(type(block).model_fields["source"].annotation)
        if source != "sample"
    ]


def _with_source(raw: dict[str, Any], dataset: str, source: str) -> dict[str, Any]:
    changed = copy.deepcopy(raw)
    changed["data"][dataset].update(source=source, path="/data/real")
    return changed


REPO = repo_params()


def test_the_repository_declares_a_sample_budget_for_every_model_of_a_sample_dataset():
    params = parse_params(REPO)
    sampled = [name for name in params.models if params.trains_on_sample(name)]
    assert sampled and all(REPO["models"][name].get("sample") for name in sampled)


@pytest.mark.parametrize(("dataset", "source"), _other_sources(REPO))
def test_no_sample_budget_applies_to_a_dataset_whose_source_is_not_the_sample(dataset, source):
    params = parse_params(_with_source(REPO, dataset, source))
    bare = parse_params(_with_source(_without_sample(REPO), dataset, source))
    models = [name for name, block in params.models.items() if block.dataset == dataset]
    assert models or dataset == "iris"
    for name in models:
        assert not params.trains_on_sample(name)
        assert params.model(name) == bare.model(name), name


def test_on_the_sample_every_model_trains_with_its_budget():
    params = parse_params(REPO)
    for name, block in REPO["models"].items():
        config = params.model(name)
        for key, value in block.get("sample", {}).items():
            source = config.train if key in type(config.train).model_fields else config.arch_args
            assert getattr(source, key) == value, f"models.{name}.sample.{key}"


def test_the_real_set_up_differs_from_the_sample_budget_where_the_issue_says():
    real = parse_params(_with_source(_with_source(REPO, "catsdogs", "kaggle"), "cifar10", "torchvision"))
    sample = parse_params(REPO)
    assert real.model("catsdogs_cnn").train.epochs > sample.model("catsdogs_cnn").train.epochs
    assert real.model("cifar_cnn_bn").train.epochs >= 15
    assert real.model("cifar_vgg16").arch_args.pretrained and not sample.model("cifar_vgg16").arch_args.pretrained
    assert real.model("cifar_vgg16").train.steps_per_epoch is None


def test_the_budget_merges_aug_and_evaluate_key_by_key():
    raw = tiny_raw(**{
        "models.catsdogs_cnn.aug": {"hflip": 0.5, "rotation": 10},
        "models.catsdogs_cnn.sample": {"epochs": 1, "aug": {"rotation": 0}, "evaluate": {"tta": "flip"}},
    })
    config = parse_params(raw).model("catsdogs_cnn")
    assert (config.train.epochs, config.aug.hflip, config.aug.rotation, config.evaluate.tta) == (1, 0.5, 0, "flip")
    raw["data"]["catsdogs"]["source"] = "kaggle"
    config = parse_params(raw).model("catsdogs_cnn")
    assert (config.train.epochs, config.aug.rotation, config.evaluate.tta) == (2, 10, "none")


@pytest.mark.parametrize(
    ("sample", "pattern"),
    [
        ({"epochs": 0}, r"models\.catsdogs_cnn\.sample\.epochs"),
        ({"epoch": 3}, r"models\.catsdogs_cnn\.sample\.epoch: unknown key; did you mean 'epochs'"),
        ({"dataset": "cifar10"}, r"models\.catsdogs_cnn\.sample\.dataset: .*not 'dataset'"),
        ({"aug": {"hflip": 2}}, r"models\.catsdogs_cnn\.sample\.aug\.hflip"),
    ],
)
def test_a_bad_budget_is_named_by_its_key(sample, pattern):
    with pytest.raises(PipelineError, match=pattern):
        parse_params(tiny_raw(**{"models.catsdogs_cnn.sample": sample}))


def test_the_real_set_up_is_checked_while_the_sample_budget_applies():
    raw = tiny_raw(**{"models.catsdogs_cnn.epochs": 0, "models.catsdogs_cnn.sample": {"epochs": 1}})
    with pytest.raises(PipelineError, match=r"models\.catsdogs_cnn\.epochs"):
        parse_params(raw)
