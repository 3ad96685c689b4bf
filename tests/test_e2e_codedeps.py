"""End to end: `dvc status` sees a code change in exactly the stages whose command imports the edited module, in a
copy of the repository whose stages are locked on placeholder outputs (nothing is trained, so it takes seconds)."""

import contextlib
from pathlib import Path

import pytest
from dvc.repo import Repo
from tests.helpers.workspace import locked_copy


pytestmark = pytest.mark.slow

# An edited module, and the stage groups (each stage of the group, one per dataset or model) that must rerun.
EDITS = {
    "pipeline/data/images.py": {"download", "preprocess", "audit"},  # download judges headers; the audit decodes
    "pipeline/training/feed.py": {"train", "audit"},  # the audit trains its folds with the training code
    "pipeline/data/raw.py": {"download", "settings", "split", "preprocess"},  # written by download, read after
    "pipeline/data/layouts.py": {"download"},  # reading a user's folder: split and preprocess read the raw layout
    "pipeline/stages/settings.py": {"settings"},
    "pipeline/data/sources/cifar_batches.py": {"download"},  # a module inside a folder dep
    "pipeline/analysis/metrics.py": {"evaluate"},
    "pipeline/analysis/diagnostics.py": {"train", "evaluate", "audit"},
    "pipeline/models/outputs.py": {"weights", "train", "evaluate", "export", "audit"},  # weights builds the net
    "pipeline/inference/onnx_metadata.py": {"export"},
    "pipeline/training/recipe.py": {"train", "audit"},
    "pipeline/stages/train.py": {"train", "audit"},  # the audit trains its folds with the train stage's fit
    "pipeline/analysis/provenance.py": {"evaluate"},
    "pipeline/cli/warm_server.py": set(),  # runs stage commands, but no stage imports it
    "pipeline/cli/stages.py": set(),  # the `pipeline` command: it calls the stages, no stage imports it
    "pipeline/preflight/lr_find.py": set(),  # a check before training: no stage imports it
    "pipeline/upkeep/deps.py": set(),  # the deps generator: upkeep, which no stage imports
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository with every stage locked."""
    return locked_copy(tmp_path_factory.mktemp("repo"))


@pytest.fixture(scope="module")
def stage_names(workspace: Path) -> set[str]:
    """Every stage of the pipeline, as `dvc status` names them (`preprocess@cifar10`)."""
    with Repo(str(workspace)) as repo:
        return {stage.name for stage in repo.index.stages}


def changed_stages(workspace: Path) -> set[str]:
    """The stages `dvc status` reports as changed, asked in this process (what `dvc status --json` prints is this
    dict; a `dvc` process per question would cost seconds of startup each)."""
    with contextlib.chdir(workspace), Repo(str(workspace)) as repo:  # names are relative to the working directory
        return set(repo.status())


def test_the_locked_copy_starts_up_to_date(workspace: Path) -> None:
    assert changed_stages(workspace) == set()


@pytest.mark.parametrize(("module", "groups"), EDITS.items(), ids=list(EDITS))
def test_editing_a_module_changes_exactly_the_stages_that_import_it(
    workspace: Path, stage_names: set[str], module: str, groups: set[str]
) -> None:
    expected = {name for name in stage_names if name.split("@")[0] in groups}
    assert {name.split("@")[0] for name in expected} == groups
    source = workspace / module
    original = source.read_text()
    source.write_text(original + "# an edit\n")
    try:
        assert changed_stages(workspace) == expected
    finally:
        source.write_text(original)
