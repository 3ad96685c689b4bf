"""`pipeline inspect`: a dataset looked at before training on it (layout, classes, sizes, formats, unreadable and
duplicate files, ignored files, the preprocess size and colour its images call for)."""


import pytest
from typer.testing import CliRunner

from pipeline.analysis.inspect import inspect, suggested_side
from pipeline.cli import app
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


def test_the_command_prints_the_findings_and_the_preprocess_they_call_for(messy_zip):
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
    assert out.endswith("\npreprocess: size 32, color rgb\n")


def test_split_folders_are_counted_per_part(tmp_path):
    files = class_images(PETS, "train/") | class_images({"cat": 2, "dog": 1}, "valid/", start=40)
    result = runner.invoke(app, ["inspect", str(write_tree(tmp_path, files, "folder")), "--layout", "split_folders"])
    assert result.exit_code == 0, result.output
    table = "class    train      val\ncat          5        2\ndog          3        1\ntotal        8        3"
    assert table in result.stdout


def test_a_missing_path_is_one_error_line(tmp_path):
    missing = runner.invoke(app, ["inspect", str(tmp_path / "nowhere.zip")])
    assert missing.exit_code == 1 and "nowhere.zip does not exist" in missing.stderr


def test_webp_and_bmp_images_are_read_like_the_others(tmp_path):
    kinds = ((0, ".webp"), (1, ".bmp"))
    files = {f"{cls}/{n}{suffix}": image(n, 9, 7, suffix) for cls in ("a", "b") for n, suffix in kinds}
    found = inspect(write_tree(tmp_path, files, "folder"))
    assert (found.unreadable, sorted(found.formats.items())) == ([], [("BMP", 2), ("WEBP", 2)])
