"""End to end: a Hugging Face Hub dataset (`source: hf`) by its id, read offline from the Hub's cache as the Hub
client leaves it after a first download (two commits of the dataset, parquet shards written by `datasets`), trained
through `dvc repro`; pinning the other commit re-runs that dataset's stages and its model's, nothing else."""

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers.hub_datasets import write_hub_folder
from tests.helpers.params import TINY
from tests.helpers.workspace import committed_copy, dvc, run, stages_run

pytestmark = pytest.mark.slow

REPO_ID = "owner/shapes"
CLASSES = ["circle", "square", "triangle"]
FIRST, SECOND = "a1" * 20, "b2" * 20  # the two commits in the cache (hex: digits alone would be read as a number)


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(20, 24, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _files(per_class: int) -> dict[str, bytes]:
    """`per_class` train images and 2 test images a class, as split folders name them."""
    files = {}
    for label, name in enumerate(CLASSES):
        for index in range(per_class + 2):
            part = "train" if index < per_class else "test"
            files[f"{part}/{name}/{name}_{index:03d}.png"] = _png(100 * label + index)
    return files


def _hub_cache(root: Path) -> Path:
    """The Hub's cache as `snapshot_download` leaves it: each commit's snapshot folder and `refs/main`; the second
    commit has one training image a class more."""
    repo = root / f"datasets--{REPO_ID.replace('/', '--')}"
    for commit, per_class in ((FIRST, 6), (SECOND, 7)):
        write_hub_folder(repo / "snapshots" / commit, _files(per_class), CLASSES)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(FIRST)
    return root


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory):
    """The repository with TINY's dogs-vs-cats and the Hub dataset pinned at the first commit, one model on each,
    after `dvc repro`, run offline against the cache; yields the root and the environment the commands run in."""
    cache = _hub_cache(tmp_path_factory.mktemp("hub"))
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    params = json.loads(json.dumps(TINY))
    params["data"]["shapes"] = {"source": "hf", "path": REPO_ID, "revision": FIRST}
    params["split"]["shapes"] = {"val": 1}
    params["preprocess"]["shapes"] = {"image_size": 32, "color": "rgb", "normalize": False}
    params["models"]["shapes_cnn"] = {"dataset": "shapes", "arch": "catsdogs_cnn", "epochs": 1}
    root = committed_copy(tmp_path_factory.mktemp("repo"), params)
    dvc(root, "repro", env=env)
    run(root, "git", "add", "-A")
    run(root, "git", "commit", "-qm", "first run")
    return root, env


def test_a_hub_dataset_trains_and_evaluates_from_the_cache_with_its_commit_recorded(workspace) -> None:
    root, _ = workspace
    index = json.loads((root / "data/raw/shapes/index.json").read_text())
    assert index["revision"] == FIRST and index["classes"] == CLASSES
    test = json.loads((root / "metrics/shapes_cnn/test.json").read_text())
    assert test["samples"] == 2 * len(CLASSES)  # the Hub's test split is the test split


def test_pinning_another_commit_reruns_that_datasets_stages_and_its_model_nothing_else(workspace) -> None:
    root, env = workspace
    output = dvc(root, "exp", "run", "-S", f"data.shapes.revision={SECOND}", env=env)
    ran = stages_run(output)
    assert {"download@shapes", "split@shapes", "preprocess@shapes", "train@shapes_cnn", "evaluate@shapes_cnn"} <= ran
    assert not {stage for stage in ran if "catsdogs" in stage}
    assert json.loads((root / "data/raw/shapes/index.json").read_text())["revision"] == SECOND
