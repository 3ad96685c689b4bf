"""End to end: a user's own images, in each layout, declared by a params edit only (a `data` block and a model),
through `dvc repro` to evaluate; generated to look like real photo folders (imbalanced classes, any sizes and
aspect ratios, JPEG and PNG, gray and colour, odd names, a zero-byte and a truncated JPEG, a duplicate file, OS
clutter), as a folder, a zip and a tar.gz."""

import json
import shutil
import tarfile
from pathlib import Path

import pytest

from pipeline.onboarding.shapes import make_images
from tests.helpers.params import repo_params
from tests.helpers.workspace import committed_repro, dvc, stages_run

pytestmark = pytest.mark.slow

LAYOUTS = {"class_folders": "zip", "split_folders": "tar.gz", "names": "folder", "csv": "folder"}
CLASSES = {"class_folders": ["Circle", "Square", "Triangle"], "names": ["circle", "square", "triangle"]}


def _packed(folder: Path, how: str) -> Path:
    if how == "zip":
        return Path(shutil.make_archive(str(folder), "zip", folder))
    if how == "tar.gz":
        with tarfile.open(f"{folder}.tar.gz", "w:gz") as tar:
            tar.add(folder, arcname=folder.name)  # one folder wrapping everything, as downloads often are
        return Path(f"{folder}.tar.gz")
    return folder


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository with one dataset of the user's own per layout and a model on each, after `dvc repro` of their
    evaluate stages."""
    own = tmp_path_factory.mktemp("own")
    params = repo_params()
    for index, (layout, how) in enumerate(LAYOUTS.items()):
        folder = own / f"shapes_{layout}"
        make_images(folder, layout, classes=3, per_class=24, imbalance=3, seed=index, flaws=True)
        params["data"][f"own_{layout}"] = {"source": "local", "path": str(_packed(folder, how))}
        params["models"][f"own_{layout}_cnn"] = {"dataset": f"own_{layout}", "arch": "catsdogs_cnn", "epochs": 2}
    targets = [f"evaluate@own_{layout}_cnn" for layout in LAYOUTS]
    return committed_repro(tmp_path_factory.mktemp("repo"), params, *targets)


def _json(workspace: Path, path: str) -> dict:
    return json.loads((workspace / path).read_text())


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_declared_dataset_runs_through_evaluate(workspace: Path, layout: str) -> None:
    index = _json(workspace, f"data/raw/own_{layout}/index.json")
    assert index["layout"] == layout
    assert index["classes"] == CLASSES.get(layout, ["Circle", "Square", "Triangle"])
    assert {"Thumbs.db", ".DS_Store", "__MACOSX/"} <= set(index["ignored"])
    metrics = _json(workspace, f"metrics/own_{layout}_cnn/test.json")
    assert 0 <= metrics["accuracy"] <= 1 and metrics["samples"] > 0
    assert _json(workspace, f"data/processed/own_{layout}/meta.json")["size"] == 80


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_zero_byte_and_truncated_jpegs_are_found_unusable_and_never_drawn(workspace: Path, layout: str) -> None:
    assert _json(workspace, f"data/raw/own_{layout}/index.json")["unusable"] == {
        "empty file": 1, "not a decodable image": 1
    }
    assert _json(workspace, f"metrics/own_{layout}/split.json")["unusable"]["total"] == 2
    summary = _json(workspace, f"metrics/own_{layout}/preprocess.json")
    assert sum(summary[name]["skipped"] for name in ("train", "val", "test")) == 0
    assert (workspace / f"data/processed/own_{layout}/skipped.csv").read_text() == "split,path,reason\n"
    assert summary["sizes"]["width"]["min"] < summary["sizes"]["width"]["max"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_duplicate_file_is_found(workspace: Path, layout: str) -> None:
    found = _json(workspace, f"metrics/own_{layout}/split.json")["duplicates"]
    assert sum(found.values()) == 1
    if layout == "split_folders":  # the copy sits in test/, its original in train/
        assert found["dropped_from_test"] == 1


def test_imbalanced_classes_keep_their_shares_in_every_split(workspace: Path) -> None:
    counts = _json(workspace, "metrics/own_class_folders/split.json")
    for name in ("train", "val", "test"):
        assert counts[name]["Circle"] > counts[name]["Triangle"]


def test_an_optional_block_added_by_an_experiment_reruns_that_dataset_only(workspace: Path) -> None:
    output = dvc(workspace, "exp", "run", "-S", "+preprocess.own_names.image_size=48", "evaluate@own_names_cnn")
    assert {"preprocess@own_names", "train@own_names_cnn", "evaluate@own_names_cnn"} <= stages_run(output)
    assert not {name for name in stages_run(output) if name.startswith(("download@", "split@"))}
