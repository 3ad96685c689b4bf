"""The generators of the docs: the params reference from the params classes and params.yaml's comments, the
command-line reference from the Typer app, the results tables from the committed results files, and the regions of
hand-written pages they fill."""

import json
from typing import Annotated, Literal

import pytest
import typer
from pydantic import BaseModel, Field

from pipeline.analysis.repro_times import StageSplit, repro_record
from pipeline.cli.main import app
from pipeline.config.params import load_params
from pipeline.config.training import TrainParams
from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths
from pipeline.upkeep.docs_cli import cli_reference, commands_of
from pipeline.upkeep.docs_pages import with_regions_filled
from pipeline.upkeep.docs_params import allowed_text, params_reference, type_text, yaml_comments
from pipeline.upkeep.docs_results import repro_summary, repro_table, sample_table, write_sample_figures
from tests.helpers.params import REPO

CLI = typer.main.get_command(app)


def test_a_key_gets_the_comment_above_it_and_after_it_and_a_run_of_keys_shares_one():
    text = "# the block\nblock:\n  # flips\n  hflip: 0\n  vflip: 0  # vertical\n\n  other: 1\n"

    comments = yaml_comments(text)

    assert comments["block"] == ["the block"]
    assert comments["block.hflip"] == ["flips"]
    assert comments["block.vflip"] == ["flips", "vertical"]
    assert comments["block.other"] == []  # a blank line ends the run


class Example(BaseModel):
    mode: Literal["none", "flip"] = "none"
    rate: float = Field(0.5, ge=0, lt=1)
    cap: Annotated[int, Field(ge=1)] | None = None
    widths: tuple[int, int] = (1, 2)


def test_types_and_allowed_values_read_as_params_yaml_writes_them():
    fields = Example.model_fields

    assert [type_text(field.annotation) for field in fields.values()] == ["str", "float", "int or null", "list of 2 int"]
    assert allowed_text(fields["mode"].annotation, fields["mode"].metadata) == "`none` / `flip`"
    assert allowed_text(fields["rate"].annotation, fields["rate"].metadata) == ">= 0, < 1"
    assert allowed_text(fields["cap"].annotation, fields["cap"].metadata) == ">= 1"


def test_the_params_reference_has_every_train_key_with_its_default_and_comment():
    page = params_reference(REPO)
    rows = {line.split(" | ")[0].strip("| `"): line for line in page.splitlines() if line.startswith("| `")}

    assert all(f"train.{key}" in rows for key in TrainParams.model_fields)
    assert "`best`" in rows["train.keep"] and "`best` / `last`" in rows["train.keep"]
    assert "validation split only" in rows["train.keep"]  # from params.yaml's comment
    assert "## arch: resnet18" in page and "`models.<model>.small_input`" in page


def test_the_cli_reference_has_every_command_and_its_options():
    page = cli_reference(CLI)

    for path, command in commands_of(CLI, "pipeline"):
        assert f"## `{path}`" in page
        assert all(f"`{flag}`" in page for parameter in command.params for flag in parameter.opts if flag.startswith("--"))
    assert "## `pipeline dev docs`" in page and "`--top`" in page


def test_the_results_tables_are_the_committed_files_figures():
    ranges = json.loads((REPO / "reports/sample_range.json").read_text())["range"]
    times = json.loads((REPO / "reports/repro_times.json").read_text())

    table = sample_table(REPO)

    assert f"{ranges['cifar_cnn'][0]:.3f} to {ranges['cifar_cnn'][1]:.3f}" in table
    assert "| `iris_mlp` |" in table and "(not on a sample)" in table
    assert "| `cifar_vgg16` | 20 steps (VGG16-BN from scratch) |" in table  # the budget and the file's note
    assert f"**{times['all']['total']:.1f}**" in repro_table(REPO)
    assert f"({times['wall_s']:.1f} s)" in repro_summary(REPO)


def test_sample_figures_are_written_from_metrics_keeping_the_notes(tmp_path):
    params = load_params(REPO / "params.yaml")
    paths = Paths(tmp_path)
    for name in params.models:
        paths.test_metrics(name).parent.mkdir(parents=True, exist_ok=True)
        calibration = {"temperature": 0.6123, "before": {"ece": 0.2}, "after": {"ece": 0.05}}
        test = {"accuracy": 0.81234, "ece": 0.05, "macro": {"f1": 0.8}, "epoch": 3, "calibration": calibration}
        paths.test_metrics(name).write_text(json.dumps(test))
        paths.per_class(name).parent.mkdir(parents=True, exist_ok=True)
        paths.per_class(name).write_text(json.dumps([{"class": "a"}, {"class": "b"}]))
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports/sample_figures.json").write_text(json.dumps({"notes": {"cifar_vgg16": "from scratch"}}))

    written = json.loads(write_sample_figures(tmp_path, params, "a test machine").read_text())

    vgg = written["models"]["cifar_vgg16"]
    assert vgg == {
        "budget": "20 steps", "epoch": 3, "accuracy": 0.812, "macro_f1": 0.8, "ece": 0.05, "ece_as_trained": 0.2,
        "temperature": 0.612, "chance": 0.5,
    }
    assert written["machine"] == "a test machine" and written["notes"] == {"cifar_vgg16": "from scratch"}


def test_sample_figures_without_metrics_say_to_run_the_pipeline(tmp_path):
    with pytest.raises(PipelineError, match="make repro"):
        write_sample_figures(tmp_path, load_params(REPO / "params.yaml"), "m")


def test_the_repro_record_sums_each_stage_group():
    splits = [
        StageSplit("train@a", 1.0, 2.0, 10.0, warm=True), StageSplit("train@b", 1.0, 2.0, 20.0),
        StageSplit("split@d", 0.5, 0.5, 0.5),
    ]

    record = repro_record(splits, 60.04, "a machine")

    assert record["groups"][0] == {
        "stages": "train", "count": 2, "warm": 1, "dvc": 2.0, "startup": 4.0, "work": 30.0, "total": 36.0
    }
    assert record["all"]["total"] == 37.5 and record["wall_s"] == 60.0 and record["machine"] == "a machine"


def test_a_region_is_rendered_afresh_and_an_unknown_one_is_an_error(tmp_path):
    page = "text\n<!-- generated: repro-table -->\nold figures\n<!-- end: repro-table -->\nmore\n"

    filled = with_regions_filled(page, REPO, {})

    stages = json.loads((REPO / "reports" / "repro_times.json").read_text())["all"]["count"]
    assert "old figures" not in filled and f"| **all ({stages})** |" in filled
    assert with_regions_filled(filled, REPO, {}) == filled
    with pytest.raises(PipelineError, match="unknown generated region 'nope'"):
        with_regions_filled("<!-- generated: nope -->\n<!-- end: nope -->", REPO, {})
