"""`audit.<dataset>` blocks: validated with errors that name the key, the sample budget laid over them, the model
the folds train with the audit's epochs."""

import pytest

from pipeline.config.params import parse_params
from pipeline.core.errors import PipelineError
from tests.helpers.params import tiny_raw


def test_an_audit_of_an_unknown_dataset_or_a_foreign_model_names_the_key():
    with pytest.raises(PipelineError, match=r"audit\.pets: no such dataset"):
        parse_params(tiny_raw(**{"audit.pets": {"model": "catsdogs_cnn"}}))
    raw = tiny_raw(**{"audit.catsdogs": {"model": "nope"}})
    with pytest.raises(PipelineError, match=r"audit\.catsdogs\.model: 'nope' is not a model of 'catsdogs'"):
        parse_params(raw)
    with pytest.raises(PipelineError, match=r"audit\.catsdogs.*folds"):
        parse_params(tiny_raw(**{"audit.catsdogs": {"model": "catsdogs_cnn", "folds": 1}}))


def test_the_sample_budget_applies_on_the_sample_and_the_folds_train_for_the_audits_epochs():
    raw = tiny_raw(**{"audit.catsdogs": {"model": "catsdogs_cnn", "epochs": 7, "folds": 5, "sample": {"folds": 2, "epochs": 3}}})
    params = parse_params(raw)
    assert params.audit_of("catsdogs").folds == 2
    assert params.audit_model("catsdogs").train.epochs == 3
    assert params.audit_model("catsdogs").name == "catsdogs_cnn"
    real = parse_params(tiny_raw(**{**{f"audit.catsdogs.{k}": v for k, v in raw["audit"]["catsdogs"].items()},
                                    "data.catsdogs.source": "kaggle"}))
    assert real.audit_of("catsdogs").folds == 5 and real.audit_model("catsdogs").train.epochs == 7


def test_near_duplicates_are_looked_for_only_where_an_audit_asks():
    params = parse_params(tiny_raw(**{"audit.catsdogs": {"model": "catsdogs_cnn", "label_issues": False}}))
    assert params.near_duplicates("catsdogs") == (3, 0.9)
    assert params.audit_model("catsdogs") is None
    assert parse_params(tiny_raw()).near_duplicates("catsdogs") is None


def test_the_hash_distance_key_is_refused_with_its_successor_named():
    raw = tiny_raw(**{"audit.catsdogs": {"model": "catsdogs_cnn", "max_distance": 36}})
    with pytest.raises(PipelineError, match=r"audit\.catsdogs\.max_distance: renamed neighbours; set audit\.catsdogs\.neighbours"):
        parse_params(raw)


def test_an_audit_names_its_model_so_that_its_stage_depends_on_that_block_alone():
    with pytest.raises(PipelineError, match=r"audit\.catsdogs\.model: Field required"):
        parse_params(tiny_raw(**{"audit.catsdogs": {"label_issues": False}}))
