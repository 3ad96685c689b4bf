"""A user's dataset read in its layout (`pipeline.data.layouts`) from a folder, a zip or a tar.gz
(`pipeline.data.tree`): each layout detected and named, clutter counted, `classes` order and subset, empty class
folders named, odd entries (symbolic link loops, broken links, unreadable files) counted, and every error naming the
key and the tree."""

import io
import os
import re
import tarfile
import zipfile
from pathlib import Path

import pytest

from pipeline.core.errors import PipelineError
from pipeline.data.classes import OTHER_CLASSES, Sample
from pipeline.data.layouts import read_listing
from pipeline.data.tree import open_tree
from tests.helpers.image_trees import (
    KINDS,
    class_images,
    image,
    messy,
    named_images,
    write_tree,
)

KEY = "data.pets"
PETS = {"cat": 5, "dog": 3}  # imbalanced on purpose
CLUTTER_COUNTS = {".DS_Store": 2, "Thumbs.db": 2, "__MACOSX/": 1, "hidden files": 1, "not images": 1}


def listing(tmp_path: Path, files: dict[str, bytes], kind: str, **options):
    return listing_at(write_tree(tmp_path, files, kind), **options)


def listing_at(path: Path, **options):
    with open_tree(path, KEY) as tree:
        return read_listing(tree, key=KEY, **options)


def error(tmp_path: Path, files: dict[str, bytes], kind: str = "zip", **options) -> str:
    with pytest.raises(PipelineError) as raised:
        listing(tmp_path, files, kind, **options)
    message = str(raised.value)
    assert message.startswith(KEY) and "dataset" in message  # the key, then the tree's path
    return message


def messy_pets(prefix: str = "") -> dict[str, bytes]:
    return class_images(PETS, prefix) | messy(prefix, "cat", "dog")


@pytest.mark.parametrize("kind", KINDS)
def test_a_tree_lists_its_files_sorted_and_reads_them(tmp_path, kind):
    files = {"b/é x.png": b"2", "a.jpg": b"1", "b/c/d.txt": b"3"}
    with open_tree(write_tree(tmp_path, files, kind), KEY) as tree:
        assert tree.names() == ["a.jpg", "b/c/d.txt", "b/é x.png"]
        assert [tree.read(name) for name in tree.names()] == [b"1", b"3", b"2"]
        assert dict(tree.read_many(["b/é x.png", "a.jpg"])) == {"a.jpg": b"1", "b/é x.png": b"2"}


@pytest.mark.parametrize("kind", KINDS)
def test_an_image_whose_name_holds_a_control_character_is_counted_not_listed(tmp_path, kind):
    """Such a name would break the manifests' CSV lines (a carriage return) and the terminal's."""
    odd = {"cat/line\rbreak.jpg": image(1, 9, 9), "dog/tab\there.jpg": image(2, 9, 9)}
    found = listing(tmp_path, class_images(PETS) | odd, kind)
    assert found.ignored == {"control characters in the name": 2}
    assert not {sample.path for sample in found.samples} & set(odd)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("prefix", ["", "PetImages/"], ids=["bare", "wrapped"])
def test_class_folders_are_classes_in_sorted_order_and_clutter_is_counted(tmp_path, kind, prefix):
    found = listing(tmp_path, messy_pets(prefix), kind)
    assert found.layout == "class_folders"
    assert found.classes == ("cat", "dog")
    assert found.ignored == CLUTTER_COUNTS
    paths = [sample.path for sample in found.samples]
    assert f"{prefix}cat/chat noir é.JPG" in paths and f"{prefix}dog/twin copy.jpg" in paths
    assert f"{prefix}cat/empty.jpg" in paths  # unreadable images are preprocess's to skip, with the reason
    assert [sample.cls for sample in found.samples] == ["cat"] * 9 + ["dog"] * 4
    assert all(sample.path.startswith(f"{prefix}{sample.cls}/") and sample.part is None for sample in found.samples)


@pytest.mark.parametrize("kind", KINDS)
def test_split_folders_keep_their_parts(tmp_path, kind):
    files = (
        class_images(PETS, "dataset/train/")
        | class_images({"cat": 2, "dog": 1}, "dataset/validation/", start=50)
        | class_images({"cat": 1, "dog": 1}, "dataset/test/", start=70)
    )
    found = listing(tmp_path, files, kind)
    assert found.layout == "split_folders"
    assert found.classes == ("cat", "dog")
    parts = [(sample.part, sample.cls) for sample in found.samples]
    assert parts == [("train", "cat")] * 5 + [("train", "dog")] * 3 + [("val", "cat")] * 2 + [("val", "dog")] + [
        ("test", "cat"),
        ("test", "dog"),
    ]
    assert found.samples[-1] == Sample("dataset/test/dog/0.jpg", "dog", "test")


@pytest.mark.parametrize("kind", KINDS)
def test_the_kaggle_names_layout_takes_the_class_before_the_first_dot(tmp_path, kind):
    files = named_images({"cat": 3, "dog": 2}, "train/") | {"train/Thumbs.db": b"x", "train/cover.jpg": image(1, 8, 8)}
    found = listing(tmp_path, files, kind)
    assert found.layout == "names"
    assert found.classes == ("cat", "dog")
    assert found.samples[0] == Sample("train/cat.0.jpg", "cat", None)
    assert len(found.samples) == 5
    assert found.ignored == {"Thumbs.db": 1, "images outside the layout": 1}


@pytest.mark.parametrize("kind", KINDS)
def test_a_csv_manifest_labels_paths_relative_to_its_folder(tmp_path, kind):
    images = class_images({"a": 2, "b": 2}, "meta/img/")
    manifest = "Path,Label,note\nimg/a/0.jpg,tabby,x\n img/a/1.jpg , siamese\n\nimg/b/0.jpg,tabby,\n"
    files = images | {"meta/labels.csv": manifest.encode(), "meta/.DS_Store": b"x"}
    found = listing(tmp_path, files, kind)
    assert found.layout == "csv"
    assert found.classes == ("siamese", "tabby")
    assert found.samples == [
        Sample("meta/img/a/1.jpg", "siamese"),
        Sample("meta/img/a/0.jpg", "tabby"),
        Sample("meta/img/b/0.jpg", "tabby"),
    ]
    assert found.ignored == {".DS_Store": 1, "images not in the CSV": 1}


def test_named_layouts_read_as_detected_and_csv_can_be_chosen(tmp_path):
    files = messy_pets("PetImages/")
    assert listing(tmp_path / "a", files, "zip", layout="class_folders") == listing(tmp_path / "b", files, "zip")
    csvs = class_images(PETS) | {"one.csv": b"path,label\ncat/0.jpg,c\ndog/0.jpg,d\n", "two.csv": b"path,label\n"}
    with pytest.raises(PipelineError, match="one.csv, two.csv"):
        listing(tmp_path / "c", csvs, "folder")
    chosen = listing(tmp_path / "d", csvs, "folder", layout="csv:one.csv")
    assert (chosen.layout, chosen.classes, len(chosen.samples)) == ("csv", ("c", "d"), 2)


@pytest.mark.parametrize("kind", KINDS)
def test_classes_fix_the_order_or_take_a_subset(tmp_path, kind):
    files = class_images({"cat": 2, "dog": 3, "fox": 1})
    ordered = listing(tmp_path / "a", files, kind, classes=["dog", "fox", "cat"])
    assert ordered.classes == ("dog", "fox", "cat")
    assert [sample.cls for sample in ordered.samples] == ["dog"] * 3 + ["fox"] + ["cat"] * 2
    subset = listing(tmp_path / "b", files, kind, classes=["fox", "cat"])
    assert subset.classes == ("fox", "cat") and len(subset.samples) == 3
    assert subset.ignored == {OTHER_CLASSES: 3}


def test_no_images_lists_what_was_found_and_the_accepted_layouts(tmp_path):
    message = error(tmp_path, {"README.txt": b"x", "docs/a.pdf": b"y", ".DS_Store": b"z"})
    assert "holds no images" in message and "docs/, README.txt" in message
    assert all(layout in message for layout in ("class_folders", "split_folders", "names", "csv"))


def test_an_ambiguous_root_lists_what_was_found(tmp_path):
    message = error(tmp_path, class_images({"cat": 2}) | {"cover.jpg": image(1, 8, 8)})
    assert "no layout" in message and "cat/, cover.jpg" in message and "split_folders" in message
    train_and_more = class_images(PETS, "train/") | class_images(PETS, "extra/")
    assert "extra/, train/" in error(tmp_path / "b", train_and_more)


def test_one_class_is_an_error(tmp_path):
    assert "one class (cat)" in error(tmp_path, class_images({"cat": 3}) | {"Thumbs.db": b"x"})
    assert "one class (dog)" in error(tmp_path / "b", class_images(PETS), classes=["dog"])


def test_a_class_without_images_is_named(tmp_path):
    files = class_images(PETS) | {"cow/Thumbs.db": b"x", "cow/notes.txt": b"y"}
    assert re.search(r"no images in the class folder cow\b", error(tmp_path, files, "tar.gz"))
    split = class_images(PETS, "train/") | class_images({"cat": 1}, "test/") | {"test/dog/.DS_Store": b"x"}
    assert "no images in the class folder test/dog" in error(tmp_path / "b", split, "folder")


@pytest.mark.parametrize("kind", KINDS)
def test_a_tree_lists_its_folders_empty_ones_too(tmp_path, kind):
    files = {"a/1.jpg": b"1", "b/c/": b"", "d/e/f.txt": b"2"}
    with open_tree(write_tree(tmp_path, files, kind), KEY) as tree:
        assert tree.folders() == ["a", "b", "b/c", "d", "d/e"]
        assert tree.names() == ["a/1.jpg", "d/e/f.txt"]


@pytest.mark.parametrize("kind", KINDS)
def test_an_empty_class_folder_is_named_like_one_holding_only_other_files(tmp_path, kind):
    empty = error(tmp_path / "a", class_images(PETS) | {"cow/": b""}, kind)
    other = error(tmp_path / "b", class_images(PETS) | {"cow/notes.txt": b"x"}, kind)
    assert re.search(r"no images in the class folder cow\b", empty)
    assert empty.replace(str(tmp_path / "a"), "") == other.replace(str(tmp_path / "b"), "")
    split = class_images(PETS, "train/") | class_images({"cat": 1}, "test/") | {"test/dog/": b""}
    assert "no images in the class folder test/dog" in error(tmp_path / "c", split, kind)


@pytest.mark.parametrize("kind", KINDS)
def test_empty_hidden_and_macos_folders_are_not_classes(tmp_path, kind):
    found = listing(tmp_path, class_images(PETS) | {".git/": b"", "__MACOSX/": b"", "cat/.cache/": b""}, kind)
    assert found.classes == ("cat", "dog") and found.ignored == {}


def test_link_loops_broken_links_and_pipes_are_counted_and_good_links_read_as_what_they_point_at(tmp_path):
    root = write_tree(tmp_path, class_images(PETS), "folder")
    write_tree(tmp_path / "elsewhere", class_images({"fox": 2}), "folder")
    (root / "fox").symlink_to(tmp_path / "elsewhere" / "dataset" / "fox")  # a class folder kept on another disk
    (root / "dog" / "link.jpg").symlink_to(root / "cat" / "0.jpg")
    (root / "cat" / "loop.jpg").symlink_to("loop.jpg")
    (root / "cat" / "ping.jpg").symlink_to("pong.jpg")
    (root / "cat" / "pong.jpg").symlink_to("ping.jpg")
    (root / "dog" / "up").symlink_to("..")  # followed, it would never end
    (root / "dog" / "gone.jpg").symlink_to("nowhere.jpg")
    os.mkfifo(root / "dog" / "pipe.jpg")  # reading it would wait forever

    found = listing_at(root)

    assert found.ignored == {"broken symbolic links": 1, "pipes, sockets and devices": 1, "symbolic link loops": 4}
    assert found.classes == ("cat", "dog", "fox")
    paths = [sample.path for sample in found.samples]
    assert "dog/link.jpg" in paths and [path for path in paths if "fox" in path] == ["fox/0.jpg", "fox/1.jpg"]
    with open_tree(root, KEY) as tree:
        assert tree.read("dog/link.jpg") == (root / "cat" / "0.jpg").read_bytes()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file and lists any folder, whatever their permissions")
def test_unreadable_files_and_folders_that_cannot_be_listed_are_counted_not_a_crash(tmp_path):
    root = write_tree(tmp_path, class_images(PETS) | {"dog/locked/0.jpg": image(1, 8, 8)}, "folder")
    (root / "cat" / "0.jpg").chmod(0)
    (root / "dog" / "locked").chmod(0)
    try:
        found = listing_at(root)
    finally:
        (root / "cat" / "0.jpg").chmod(0o644)
        (root / "dog" / "locked").chmod(0o755)
    assert found.ignored == {"folders that cannot be listed": 1, "unreadable files": 1}
    assert "cat/0.jpg" not in [sample.path for sample in found.samples] and found.classes == ("cat", "dog")


def test_a_symbolic_link_inside_a_tar_is_counted_not_followed(tmp_path):
    target = write_tree(tmp_path, class_images(PETS), "tar.gz")
    with tarfile.open(target, "r:gz") as archive:
        members = [(info, archive.extractfile(info).read()) for info in archive.getmembers()]
    link = tarfile.TarInfo("dog/link.jpg")
    link.type, link.linkname = tarfile.SYMTYPE, "../cat/0.jpg"
    with tarfile.open(target, "w:gz") as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data))
        archive.addfile(link)
    found = listing_at(target)
    assert found.ignored == {"symbolic links inside a tar": 1}
    assert "dog/link.jpg" not in [sample.path for sample in found.samples]


def test_test_or_val_classes_that_differ_from_train_are_named(tmp_path):
    files = class_images(PETS, "train/") | class_images({"cat": 1, "bird": 1}, "val/")
    message = error(tmp_path, files)
    assert "val lacks dog" in message and "val has bird, which train lacks" in message
    picked = class_images(PETS | {"bird": 1}, "train/") | class_images({"cat": 1, "dog": 1}, "test/")
    found = listing(tmp_path / "c", picked, "zip", classes=["cat", "dog"])
    assert found.ignored == {OTHER_CLASSES: 1}


def test_split_folders_need_train(tmp_path):
    files = class_images(PETS, "val/") | class_images(PETS, "test/")
    assert "no train/" in error(tmp_path, files, layout="split_folders")


def test_a_classes_entry_that_does_not_exist_is_named(tmp_path):
    message = error(tmp_path, class_images(PETS), classes=["cat", "cow"])
    assert message.startswith(f"{KEY}.classes: 'cow' is not a class") and "cat, dog" in message


def test_an_unknown_layout_lists_the_accepted_ones(tmp_path):
    with pytest.raises(PipelineError, match=rf"^{KEY}\.layout: unknown layout 'flat'; choose auto or one of: class_"):
        listing(tmp_path, class_images(PETS), "folder", layout="flat")


def test_csv_errors_name_the_manifest_and_the_row(tmp_path):
    images = class_images(PETS)
    no_header = images | {"labels.csv": b"cat/0.jpg,cat\ndog/0.jpg,dog\n"}
    assert "needs a header row" in error(tmp_path / "a", no_header, layout="csv")
    missing = images | {"labels.csv": b"path,label\ncat/0.jpg,cat\ncat/99.jpg,cat\n"}
    assert "1 files that are not there: cat/99.jpg" in error(tmp_path / "b", missing)
    outside = images | {"labels.csv": b"path,label\n../x.jpg,cat\n"}
    assert "row 2: '../x.jpg' points outside" in error(tmp_path / "c", outside)


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_a_corrupt_archive_is_an_error_naming_it(tmp_path, kind):
    whole = write_tree(tmp_path, class_images(PETS), kind)
    whole.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(PipelineError, match=rf"{KEY}: .*{re.escape(whole.name)} is a corrupt archive"):
        with open_tree(whole, KEY) as tree:
            read_listing(tree, key=KEY)
            for _ in tree.read_many(tree.names()):
                pass


def test_entries_pointing_outside_are_refused(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("cat/0.jpg", b"x")
        archive.writestr("../evil.jpg", b"x")
    (tmp_path / "bad.zip").write_bytes(buffer.getvalue())
    with pytest.raises(PipelineError, match=r"bad\.zip holds the entry '\.\./evil\.jpg'"):
        open_tree(tmp_path / "bad.zip", KEY)
    with tarfile.open(tmp_path / "bad.tar.gz", "w:gz") as archive:
        link = tarfile.TarInfo("cat/0.jpg")
        link.type, link.linkname = tarfile.SYMTYPE, "../../etc/passwd"
        archive.addfile(link)
    with pytest.raises(PipelineError, match="points outside the archive's folder"):
        open_tree(tmp_path / "bad.tar.gz", KEY)


def test_a_missing_path_or_another_kind_of_file_is_an_error(tmp_path):
    with pytest.raises(PipelineError, match=rf"{KEY}: .*nowhere does not exist"):
        open_tree(tmp_path / "nowhere", KEY)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(PipelineError, match="neither a folder nor a zip or tar archive"):
        open_tree(tmp_path / "notes.txt", KEY)
