import hashlib
import re
import zipfile
from collections.abc import Iterator

import pandas as pd
import pytest

from pipeline.config.datasets import CatsDogsData
from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths
from pipeline.data.archive import ZIP_EPOCH, open_archive, refuse_unsafe, write_zip
from pipeline.data.ingest import ingest
from pipeline.data.raw import read_samples
from pipeline.data.tree import open_tree
from tests.helpers.image_trees import image

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


def test_ingest_sorts_naturally_hashes_judges_and_leaves_out_what_is_not_the_datasets(tmp_path):
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
    real = {"train/cat.2.jpg": image(1, 8, 8), "train/dog.10.jpg": image(2, 8, 8)}  # the others' bytes are their names
    members = {name: real.get(name, name.encode()) for name in names}
    write_zip(target, members.items())
    folder = tmp_path / "raw"
    folder.mkdir()

    with open_tree(target, "data.catsdogs.path") as tree:
        index = ingest(tree, CatsDogsData(), "data.catsdogs", folder)

    frame = pd.read_csv(folder / "samples.csv", dtype=str, keep_default_na=False)
    assert list(frame.columns) == ["path", "class", "part", "sha256", "skip"]
    kept = ["cat.1.jpg", "cat.2.jpg", "cat.5.png", "cat.10.jpg", "cat.x.jpg", "dog.2.jpg", "dog.10.jpg"]
    assert frame["path"].tolist() == [f"train/{name}" for name in kept]
    assert frame["class"].tolist() == ["cat"] * 5 + ["dog"] * 2
    assert set(frame["part"]) == {""}
    assert frame["sha256"].tolist() == [hashlib.sha256(members[path]).hexdigest() for path in frame["path"]]
    assert frame.loc[frame["path"].isin(real), "skip"].tolist() == ["", ""]
    assert set(frame.loc[~frame["path"].isin(real), "skip"]) == {"not a decodable image"}
    with zipfile.ZipFile(folder / "images.zip") as archive:
        assert archive.namelist() == frame["path"].tolist()
    assert (index.classes, index.samples, index.layout) == (("cat", "dog"), 7, "names")
    assert index.ignored == {
        ".DS_Store": 2, "Thumbs.db": 1, "__MACOSX/": 2, "images of classes not in `classes`": 1, "not images": 1
    }
    assert index.unusable == {"not a decodable image": 5}


def test_ingest_of_an_archive_without_images_is_an_error(tmp_path):
    target = tmp_path / "train.zip"
    write_zip(target, [("readme.txt", b"x")])

    with open_tree(target, "data.catsdogs.path") as tree, pytest.raises(PipelineError, match="holds no images"):
        ingest(tree, CatsDogsData(), "data.catsdogs", tmp_path)


def test_open_archive_of_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "data" / "raw" / "catsdogs" / "train.zip"

    with pytest.raises(PipelineError, match=re.escape(str(missing)) + ".*not found"):
        open_archive(missing)


def test_open_archive_of_corrupt_file_names_the_path(tmp_path):
    corrupt = tmp_path / "train.zip"
    corrupt.write_bytes(b"this is not a zip archive at all")

    with pytest.raises(PipelineError, match=re.escape(str(corrupt)) + ": not a readable zip"):
        open_archive(corrupt)


def test_reading_raw_samples_that_are_not_there_says_to_download(tmp_path):
    with pytest.raises(PipelineError, match=r"samples\.csv: not found; run the download stage first"):
        read_samples(Paths(tmp_path), "catsdogs")


UNSAFE = ["../x.jpg", "/x.jpg", "..\\x.jpg", "C:/x.jpg", "C:x.jpg", "a/../../x", "//host/share/x"]


@pytest.mark.parametrize("entry", UNSAFE)
def test_refuse_unsafe_names_the_archive_and_the_entry(entry):
    message = f"data.x: a.zip holds the entry {entry!r}, which points outside"
    with pytest.raises(PipelineError, match=re.escape(message)):
        refuse_unsafe(["train/cat.1.jpg", entry], "a.zip", "data.x")


def test_refuse_unsafe_passes_entries_that_stay_inside():
    refuse_unsafe(["train/", "train/cat.1.jpg", "a/..b/c..jpg", "__MACOSX/._x", "dir\\cat.2.jpg"], "a.zip", "data.x")
