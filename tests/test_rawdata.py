import re
import zipfile
from collections.abc import Iterator

import pytest

from pipeline.core.errors import PipelineError
from pipeline.data.archive import (
    ZIP_EPOCH,
    list_images,
    open_archive,
    refuse_unsafe,
    write_zip,
)
from pipeline.data.specs import CATSDOGS

MEMBERS = [("train/cat.1.jpg", b"cat one"), ("train/dog.1.jpg", b"dog one"), ("notes.txt", b"hello")]


def test_write_zip_returns_member_count_and_stores_contents(tmp_path):
    target = tmp_path / "raw" / "train.zip"

    assert write_zip(target, MEMBERS) == len(MEMBERS)

    with zipfile.ZipFile(target) as archive:
        assert [(name, archive.read(name)) for name in archive.namelist()] == MEMBERS
        assert all(info.date_time == ZIP_EPOCH for info in archive.infolist())


def test_write_zip_is_byte_identical_for_equal_members(tmp_path):
    first, second = tmp_path / "a" / "train.zip", tmp_path / "b" / "train.zip"

    write_zip(first, MEMBERS)
    write_zip(second, iter(MEMBERS))

    assert first.read_bytes() == second.read_bytes()


def failing_members() -> Iterator[tuple[str, bytes]]:
    yield MEMBERS[0]
    raise RuntimeError("source vanished")


def test_write_zip_leaves_no_target_when_members_fail(tmp_path):
    target = tmp_path / "raw" / "train.zip"

    with pytest.raises(RuntimeError, match="source vanished"):
        write_zip(target, failing_members())

    assert list(target.parent.iterdir()) == []


def test_write_zip_keeps_previous_target_when_members_fail(tmp_path):
    target = tmp_path / "train.zip"
    write_zip(target, MEMBERS)
    before = target.read_bytes()

    with pytest.raises(RuntimeError):
        write_zip(target, failing_members())

    assert target.read_bytes() == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["train.zip"]


def test_list_images_sorts_naturally_and_skips_non_images(tmp_path):
    target = tmp_path / "train.zip"
    names = [
        "train/",
        "train/cat.10.jpg",
        "train/dog.2.jpg",
        "train/cat.2.jpg",
        "train/dog.10.jpg",
        "train/cat.1.jpg",
        "__MACOSX/train/._cat.1.jpg",
        "__MACOSX/train/cat.3.jpg",
        "train/Thumbs.db",
        "train/.DS_Store",
        ".DS_Store",
        "train/bird.1.jpg",
        "train/cat.x.jpg",
        "train/cat.5.png",
        "sampleSubmission.csv",
    ]
    write_zip(target, ((name, b"x") for name in names))

    frame = list_images(target, CATSDOGS)

    assert list(frame.columns) == ["path", "class", "part"]
    assert frame.to_dict("records") == [
        {"path": "train/cat.1.jpg", "class": "cat", "part": "train"},
        {"path": "train/cat.2.jpg", "class": "cat", "part": "train"},
        {"path": "train/cat.10.jpg", "class": "cat", "part": "train"},
        {"path": "train/dog.2.jpg", "class": "dog", "part": "train"},
        {"path": "train/dog.10.jpg", "class": "dog", "part": "train"},
    ]


def test_list_images_of_an_archive_without_images_is_empty(tmp_path):
    target = tmp_path / "train.zip"
    write_zip(target, [("readme.txt", b"x")])

    frame = list_images(target, CATSDOGS)

    assert frame.empty
    assert list(frame.columns) == ["path", "class", "part"]


def test_open_archive_of_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "data" / "raw" / "catsdogs" / "train.zip"

    with pytest.raises(PipelineError, match=re.escape(str(missing)) + ".*not found"):
        open_archive(missing)


def test_open_archive_of_corrupt_file_names_the_path(tmp_path):
    corrupt = tmp_path / "train.zip"
    corrupt.write_bytes(b"this is not a zip archive at all")

    with pytest.raises(PipelineError, match=re.escape(str(corrupt)) + ": not a readable zip"):
        open_archive(corrupt)


def test_list_images_of_missing_archive_is_a_pipeline_error(tmp_path):
    with pytest.raises(PipelineError, match="run the download stage first"):
        list_images(tmp_path / "train.zip", CATSDOGS)


UNSAFE = ["../x.jpg", "/x.jpg", "..\\x.jpg", "C:/x.jpg", "C:x.jpg", "a/../../x", "//host/share/x"]


@pytest.mark.parametrize("entry", UNSAFE)
def test_refuse_unsafe_names_the_archive_and_the_entry(entry):
    message = f"data.x: a.zip holds the entry {entry!r}, which points outside"
    with pytest.raises(PipelineError, match=re.escape(message)):
        refuse_unsafe(["train/cat.1.jpg", entry], "a.zip", "data.x")


def test_refuse_unsafe_passes_entries_that_stay_inside():
    refuse_unsafe(["train/", "train/cat.1.jpg", "a/..b/c..jpg", "__MACOSX/._x", "dir\\cat.2.jpg"], "a.zip", "data.x")
