"""End to end, no silent no-op: `dvc exp run -S` of the image size re-runs preprocess and what follows it (DVC's run
cache once restored the old arrays for a key named `size`), and bad keys and values are refused with one line naming
the key, the workspace's outputs left as they were."""

import json
import sys
from pathlib import Path

import pytest

from tests.helpers.params import TINY
from tests.helpers.workspace import attempt, committed_repro, dvc, run, stages_run

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
MODEL = "catsdogs_cnn"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A committed copy of the repo with TINY params (dogs-vs-cats only), trained once."""
    return committed_repro(tmp_path_factory.mktemp("repo"), TINY, f"train@{MODEL}")


def meta_size(root: Path) -> int:
    return json.loads((root / "data/processed/catsdogs/meta.json").read_text())["size"]


def test_changing_the_image_size_reruns_preprocess_and_training(workspace: Path) -> None:
    assert meta_size(workspace) == TINY["preprocess"]["catsdogs"]["image_size"]
    output = dvc(workspace, "exp", "run", "-S", "preprocess.catsdogs.image_size=40", f"train@{MODEL}")
    assert {"settings@catsdogs", "preprocess@catsdogs", f"train@{MODEL}"} <= stages_run(output)
    assert meta_size(workspace) == 40
    size = TINY["preprocess"]["catsdogs"]["image_size"]
    dvc(workspace, "exp", "run", "-S", f"preprocess.catsdogs.image_size={size}", "preprocess@catsdogs")
    assert meta_size(workspace) == size  # restored from the run cache (the key counts there now) or run again


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("+preprocess.catsdogs.size=64", "preprocess.catsdogs.size: renamed image_size"),
        ("preprocess.catsdogs.image_size=0", "preprocess.catsdogs.image_size: Input should be greater than or equal"),
        (f"models.{MODEL}.dataset=nowhere", f"models.{MODEL}.dataset: 'nowhere' is not a dataset under `data`"),
    ],
)
def test_a_bad_override_is_one_line_naming_its_key_and_changes_no_output(
    workspace: Path, override: str, key: str
) -> None:
    before = {path: path.read_bytes() for path in (workspace / "data/processed").rglob("*") if path.is_file()}
    refused = attempt(workspace, sys.executable, "-m", "dvc", "exp", "run", "-S", override, f"train@{MODEL}")
    run(workspace, "git", "checkout", "params.yaml")  # a failed dvc exp run leaves its -S in params.yaml
    assert refused.returncode != 0
    errors = [line for line in (refused.stdout + refused.stderr).splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and key in errors[0]
    assert {path: path.read_bytes() for path in before} == before
    assert "Running stage 'train@" not in refused.stdout
