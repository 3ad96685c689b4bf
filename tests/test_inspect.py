"""`pipeline inspect`: a dataset looked at before it is declared (layout, classes, sizes, formats, unreadable and
duplicate files, ignored files) and the params blocks that declare it, written into params.yaml on request with its
comments kept."""

import difflib
import shutil

import pytest
import yaml
from typer.testing import CliRunner

from pipeline.analysis.inspect import inspect
from pipeline.analysis.params_blocks import dataset_name, suggested_side
from pipeline.cli import app
from tests.conftest import REPO
from tests.image_trees import class_images, image, messy, write_tree

runner = CliRunner()
PETS = {"cat": 5, "dog": 3}


@pytest.fixture
def messy_zip(tmp_path):
    return write_tree(tmp_path / "in", class_images(PETS) | messy("", "cat", "dog"), "zip")


def test_inspect_reads_headers_finds_unreadable_and_duplicate_files(messy_zip):
    found = inspect(messy_zip)
    assert found.listing.layout == "class_folders"
    assert found.unreadable == [
        ("cat/cut.jpg", "truncated JPEG (no end-of-image marker); download it again"),
        ("cat/empty.jpg", "empty file"),
    ]
    assert found.duplicates == [["cat/twin.jpg", "dog/twin copy.jpg"]]
    assert sorted(found.formats.items()) == [("JPEG", 9), ("PNG", 2)]
    assert len(found.sizes) == 11 and (12, 9) in found.sizes and (9, 9) in found.sizes
    assert found.color == "rgb"


def test_all_gray_images_suggest_gray_and_the_size_follows_the_median(tmp_path):
    files = {f"{cls}/{n}.png": image(n, 100 + n, 70 + n, ".png", gray=True) for cls in ("a", "b") for n in range(3)}
    found = inspect(write_tree(tmp_path, files, "tar.gz"))
    assert (found.color, found.side) == ("gray", 71)
    assert suggested_side(found.side) == 64
    assert [suggested_side(side) for side in (5, 32, 95, 96, 127, 4000)] == [32, 32, 64, 96, 96, 128]


def test_the_command_prints_the_findings_and_the_params_blocks(messy_zip):
    result = runner.invoke(app, ["inspect", str(messy_zip)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"{messy_zip}: class_folders layout, 2 classes, 13 images" in out
    assert "cat          9" in out and "dog          4" in out
    assert "width   min 8, median 12, max 16 pixels" in out
    assert "formats JPEG 9, PNG 2 (colour)" in out
    assert "cat/empty.jpg: empty file" in out and "cat/cut.jpg: truncated JPEG" in out
    assert "cat/twin.jpg = dog/twin copy.jpg" in out
    assert "Thumbs.db: 2" in out and "__MACOSX/: 1" in out and "not images: 1" in out
    blocks = yaml.safe_load(out[out.index("\ndata:") :])
    assert blocks == {
        "data": {"dataset": {"source": "local", "path": str(messy_zip.resolve())}},
        "preprocess": {"dataset": {"size": 32, "color": "rgb"}},
        "models": {"dataset_cnn": {"dataset": "dataset", "arch": "catsdogs_cnn"}},
    }


def test_split_folders_are_counted_per_part(tmp_path):
    files = class_images(PETS, "train/") | class_images({"cat": 2, "dog": 1}, "valid/", start=40)
    result = runner.invoke(app, ["inspect", str(write_tree(tmp_path, files, "folder")), "--layout", "split_folders"])
    assert result.exit_code == 0, result.output
    table = "class    train      val\ncat          5        2\ndog          3        1\ntotal        8        3"
    assert table in result.stdout


def test_write_adds_the_blocks_keeping_the_comments_and_refuses_a_name_in_use(tmp_path, messy_zip):
    params = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params)
    before = params.read_text()
    result = runner.invoke(app, ["inspect", str(messy_zip), "--write", "pets", "--params", str(params)])
    assert result.exit_code == 0, result.output
    assert "added data.pets, preprocess.pets, models.pets_cnn" in result.stdout
    after = params.read_text()
    changes = [line for line in difflib.ndiff(before.splitlines(), after.splitlines()) if line[0] in "+-?"]
    assert len(changes) == 9 and all(line.startswith("+ ") for line in changes)  # added, nothing else touched
    assert "# Where each dataset's raw images come from." in after
    raw = yaml.safe_load(after)
    assert raw["data"]["pets"] == {"source": "local", "path": str(messy_zip.resolve())}
    assert raw["preprocess"]["pets"] == {"size": 32, "color": "rgb"}
    assert raw["models"]["pets_cnn"] == {"dataset": "pets", "arch": "catsdogs_cnn"}
    heading = "\n\n# How each dataset is split into train / val / test manifests"
    assert f"    path: {messy_zip.resolve()}{heading}" in after  # the next block's comment stays above it

    again = runner.invoke(app, ["inspect", str(messy_zip), "--write", "pets", "--params", str(params)])
    assert again.exit_code == 1 and again.stdout == ""
    assert "already has data.pets, preprocess.pets, models.pets_cnn" in again.stderr and str(params) in again.stderr
    assert params.read_text() == after


def test_a_bad_name_or_path_is_one_error_line(tmp_path, messy_zip):
    bad_name = runner.invoke(app, ["inspect", str(messy_zip), "--write", "My Pets", "--params", str(tmp_path / "p")])
    assert bad_name.exit_code == 1 and bad_name.stderr.startswith("error: --write 'My Pets'")
    missing = runner.invoke(app, ["inspect", str(tmp_path / "nowhere.zip")])
    assert missing.exit_code == 1 and "nowhere.zip does not exist" in missing.stderr


def test_a_dataset_name_is_derived_from_the_path(tmp_path):
    assert dataset_name(tmp_path / "kagglecatsanddogs_5340.zip") == "kagglecatsanddogs_5340"
    assert dataset_name(tmp_path / "Pet Images.tar.gz") == "pet_images"
    assert dataset_name(tmp_path / "101_ObjectCategories.tgz") == "data_101_objectcategories"


def test_webp_and_bmp_images_are_read_like_the_others(tmp_path):
    kinds = ((0, ".webp"), (1, ".bmp"))
    files = {f"{cls}/{n}{suffix}": image(n, 9, 7, suffix) for cls in ("a", "b") for n, suffix in kinds}
    found = inspect(write_tree(tmp_path, files, "folder"))
    assert (found.unreadable, sorted(found.formats.items())) == ([], [("BMP", 2), ("WEBP", 2)])
