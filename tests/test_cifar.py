"""A user's copy of CIFAR-10 in each accepted format (the official archive, an extracted batches folder, images in
split folders) taken by `download`, and the bad copies it refuses without writing anything."""

import pickle
import re
import tarfile
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.config.datasets import Cifar10Data
from pipeline.core.errors import PipelineError
from pipeline.data.raw import read_index, read_samples
from pipeline.data.sources.cifar_batches import BASE_FOLDER
from pipeline.data.sources.cifar_official import FILENAME
from pipeline.stages.download import download
from tests.helpers.cifar_files import (
    BATCH_SIZES,
    assert_nothing_written,
    batches_folder,
    decoded,
    local,
    official_tar,
    py2_file,
    tar_gz,
    write,
)
from tests.helpers.refusals import refusal_writing_nothing_outside

PATH_KEY = r"data\.cifar10[.:]"

pytestmark = pytest.mark.usefixtures("offline_cifar_cache")


def extracted_folder(root: Path, batches: dict) -> Path:
    return batches_folder(root, batches)


def folder_holding_extracted(root: Path, batches: dict) -> Path:
    return batches_folder(root / "downloads", batches).parent


@pytest.mark.parametrize("make_source", [official_tar, extracted_folder, folder_holding_extracted])
def test_pickle_batches_round_trip_exactly(tmp_path, paths, cifar_batches, cifar_images, make_source):
    count = download("cifar10", local(make_source(tmp_path / "user", cifar_batches)), 0, paths).samples

    images = decoded(paths)
    assert count == len(cifar_images) == sum(BATCH_SIZES.values())
    assert images.keys() == cifar_images.keys()
    assert all(np.array_equal(images[name], cifar_images[name]) for name in cifar_images)
    samples = read_samples(paths, "cifar10")
    assert [f"{part}/{cls}" for part, cls in zip(samples["part"], samples["class"], strict=True)] == [
        name.rsplit("/", 1)[0] for name in samples["path"]
    ]
    assert read_index(paths, "cifar10").layout == "split_folders"


def class_tree(root: Path) -> dict[str, bytes]:
    """Split folders of PNGs and JPEGs of odd names and sizes, with stray files; returns the images expected in the
    raw archive, in their order (train then test, each by class, then by name in natural order)."""
    png = cv2.imencode(".png", np.full((24, 40, 3), 90, np.uint8))[1].tobytes()
    jpeg = cv2.imencode(".jpg", np.full((32, 32, 3), 200, np.uint8))[1].tobytes()
    files = {
        "train/airplane/7.png": png,
        "train/airplane/0010.png": png,
        "train/airplane/Überflieger.jpg": jpeg,
        "train/cat/IMG 0001.PNG": png,
        "train/cat/kitten.v2.JPEG": jpeg,
        "test/airplane/boat.jpg": jpeg,
        "test/cat/00002.png": png,
        "test/cat/sub/00003.png": png,
    }
    for name, data in files.items():
        write(root / name, data)
    for stray in ("train/cat/.DS_Store", "train/cat/._kitten.png", "train/cat/notes.txt", "train/labels.csv",
                  "train/.ipynb_checkpoints/cat.png", "test/__MACOSX/cat/._boat.jpg"):
        write(root / stray, b"not an image")
    return files


def test_split_folders_keep_the_original_names_and_bytes(tmp_path, paths):
    members = class_tree(tmp_path / "user")

    index = download("cifar10", local(tmp_path / "user"), 0, paths)

    with zipfile.ZipFile(paths.raw_archive("cifar10")) as archive:
        assert archive.namelist() == list(members)
        assert {name: archive.read(name) for name in archive.namelist()} == members
    assert (index.samples, index.classes, index.layout) == (len(members), ("airplane", "cat"), "split_folders")
    assert read_samples(paths, "cifar10")["part"].tolist() == ["train"] * 5 + ["test"] * 3


def missing(root: Path, batches: dict) -> Path:
    return root / "cifar-10-python.tar.gz"


def zip_file(root: Path, batches: dict) -> Path:
    return write(root / "cifar10.zip", b"PK\x05\x06" + b"\x00" * 18)


def folder_of_batches_and_other_things(root: Path, batches: dict) -> Path:
    return write(root / "stuff" / "data_batch_1", b"hello").parent


def text_file(root: Path, batches: dict) -> Path:
    return write(root / "cifar10.tar.gz", b"just some text, not an archive")


def folder_of_other_things(root: Path, batches: dict) -> Path:
    return write(root / "stuff" / "readme.txt", b"hello").parent


def unknown_class_folder(root: Path, batches: dict) -> Path:
    write(root / "tree" / "train" / "cats" / "1.png", b"png")
    write(root / "tree" / "test" / "cat" / "1.png", b"png")
    return root / "tree"


def tree_without_train(root: Path, batches: dict) -> Path:
    return write(root / "tree" / "test" / "cat" / "1.png", b"png").parents[2]


def tree_without_images(root: Path, batches: dict) -> Path:
    write(root / "tree" / "train" / "cat" / "1.png", b"png")
    return write(root / "tree" / "test" / "cat" / "notes.txt", b"x").parents[2]


def truncated_tar(root: Path, batches: dict) -> Path:
    archive = official_tar(root, batches)
    return write(archive, archive.read_bytes()[: archive.stat().st_size // 2])


def corrupt_tar(root: Path, batches: dict) -> Path:
    data = bytearray(official_tar(root, batches).read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    return write(root / FILENAME, bytes(data))


def corrupt_pickle(root: Path, batches: dict) -> Path:
    return batches_folder(root, batches, data_batch_3=b"\x80\x02}(garbage")


def folder_missing_batches(root: Path, batches: dict) -> Path:
    return batches_folder(root, batches, skip=("data_batch_5", "batches.meta"))


def tar_missing_test_batch(root: Path, batches: dict) -> Path:
    return tar_gz(root, batches_folder(root / "build", batches, skip=("test_batch",)))


def not_cifar10_labels(root: Path, batches: dict) -> Path:
    return batches_folder(root, batches, **{"batches.meta": py2_file({b"label_names": [b"apple"]})})


def labels_out_of_range(root: Path, batches: dict) -> Path:
    bad = batches["data_batch_1"] | {b"labels": [0, 1, 10]}
    return batches_folder(root, batches, data_batch_1=py2_file(bad))


def rows_of_wrong_length(root: Path, batches: dict) -> Path:
    bad = batches["test_batch"] | {b"data": np.zeros((4, 1024), np.uint8)}
    return batches_folder(root, batches, test_batch=py2_file(bad))


BAD_SOURCES = [
    (missing, "does not exist", None),
    (zip_file, "holds no images", "accepted layouts"),
    (text_file, "is a corrupt archive", None),
    (folder_of_other_things, "holds no images", "accepted layouts"),
    (folder_of_batches_and_other_things, "data_batch_1 is not a readable CIFAR-10 batch", None),
    (unknown_class_folder, "the test classes differ from the train classes", "test has cat, which train lacks"),
    (tree_without_train, "but no train/", None),
    (tree_without_images, "no images in the class folder test/cat", None),
    (truncated_tar, "corrupt archive", "download it again"),
    (corrupt_tar, "download it again", None),  # the gzip check or the unpickler, by where the damage lands
    (corrupt_pickle, "data_batch_3 is not a readable CIFAR-10 batch", "download it again"),
    (folder_missing_batches, "lacks data_batch_5, batches.meta", "download cifar-10-python.tar.gz again"),
    (tar_missing_test_batch, "lacks test_batch", None),
    (not_cifar10_labels, "does not name the CIFAR-10 classes", None),
    (labels_out_of_range, "data_batch_1 in", "label 0-9"),
    (rows_of_wrong_length, "test_batch in", "3072 values a row"),
]


@pytest.mark.parametrize(("make_source", "message", "hint"), BAD_SOURCES, ids=[bad[0].__name__ for bad in BAD_SOURCES])
def test_bad_local_source_is_an_error_and_writes_nothing(tmp_path, paths, cifar_batches, make_source, message, hint):
    source = make_source(tmp_path / "user", cifar_batches)

    with pytest.raises(PipelineError, match=PATH_KEY) as error:
        download("cifar10", local(source), 0, paths)

    assert message in str(error.value)
    assert str(source) in str(error.value)
    assert hint is None or hint in str(error.value)
    assert_nothing_written(paths)


def entry(name: str, kind: bytes = tarfile.REGTYPE, target: str = "") -> tarfile.TarInfo:
    """A tar entry: a one-byte file, or a link to `target`."""
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, target, 1 if kind == tarfile.REGTYPE else 0
    return info


UNSAFE_TAR_ENTRIES = {  # the entry, and the path the error names
    "parent": (entry("../outside"), "../outside"),
    "absolute": (entry("/tmp/outside"), "/tmp/outside"),
    "symlink-out": (entry(f"{BASE_FOLDER}/link", tarfile.SYMTYPE, "../../outside"), "../outside"),
    "hardlink-absolute": (entry(f"{BASE_FOLDER}/hard", tarfile.LNKTYPE, "/etc/passwd"), "/etc/passwd"),
}


@pytest.mark.parametrize(("unsafe", "shown"), UNSAFE_TAR_ENTRIES.values(), ids=UNSAFE_TAR_ENTRIES)
def test_tar_entry_pointing_outside_is_refused_and_nothing_is_written(tmp_path, paths, cifar_batches, unsafe, shown):
    source = tar_gz(tmp_path / "user", batches_folder(tmp_path / "build", cifar_batches), unsafe)

    message = refusal_writing_nothing_outside(
        tmp_path, paths.root / "data", lambda: download("cifar10", local(source), 0, paths)
    )

    assert re.match(PATH_KEY, message) and f"{source} holds the entry {shown!r}, which points outside" in message
    assert_nothing_written(paths)


class WritesAFile:
    """Unpickled by plain `pickle`, this creates the file at `path`: a stand-in for any code a crafted batch runs."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return exec, (f"open({str(self.path)!r}, 'w').close()",)


@pytest.mark.parametrize("as_tar", [False, True], ids=["folder", "tar"])
def test_crafted_pickle_batch_is_refused_without_running_its_code(tmp_path, paths, cifar_batches, as_tar):
    proof, marker = tmp_path / "proof", tmp_path / "marker"
    pickle.loads(pickle.dumps(WritesAFile(proof)))  # the payload is live: plain pickle runs it
    crafted = pickle.dumps({b"data": WritesAFile(marker), b"labels": [0]})
    folder = batches_folder(tmp_path / ("build" if as_tar else "user"), cifar_batches, data_batch_2=crafted)
    source = tar_gz(tmp_path / "user", folder) if as_tar else folder

    with pytest.raises(PipelineError, match=PATH_KEY) as error:
        download("cifar10", local(source), 0, paths)

    message = str(error.value)
    assert str(source) in message and "data_batch_2" in message and "not a readable CIFAR-10 batch" in message
    assert "unexpected builtins.exec" in message
    assert proof.exists() and not marker.exists()
    assert_nothing_written(paths)


def test_sample_keeps_a_previous_archive_when_a_later_source_fails(tmp_path, paths):
    download("cifar10", Cifar10Data(sample_per_class=1, sample_test_per_class=1), 0, paths)
    before = paths.raw_archive("cifar10").read_bytes()

    with pytest.raises(PipelineError):
        download("cifar10", local(tmp_path / "missing"), 0, paths)

    assert paths.raw_archive("cifar10").read_bytes() == before
