import io
import pickle
import tarfile
import zipfile

import cv2
import numpy as np
import pytest

from pipeline.config.datasets import Cifar10Data
from pipeline.core.paths import Paths
from pipeline.data.raw import read_samples
from pipeline.data.sources.cifar_batches import CIFAR10_CLASSES, PARTS
from pipeline.data.sources.cifar_sample import BASE_FOLDER, cifar10_sample
from pipeline.stages.download import download

PER_CLASS, TEST_PER_CLASS = 3, 2


@pytest.fixture(scope="module")
def sample() -> bytes:
    return cifar10_sample(PER_CLASS, TEST_PER_CLASS, seed=3)


def unpacked(archive: bytes) -> dict[str, dict]:
    """The archive's members, unpickled as the official CIFAR-10 page shows (`encoding="bytes"`)."""
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        return {member.name: pickle.load(tar.extractfile(member), encoding="bytes") for member in tar}


def test_same_seed_gives_identical_bytes(sample):
    assert cifar10_sample(PER_CLASS, TEST_PER_CLASS, seed=3) == sample


def test_another_seed_gives_other_images(sample):
    assert cifar10_sample(PER_CLASS, TEST_PER_CLASS, seed=4) != sample


def test_sample_is_in_the_official_layout(sample):
    members = unpacked(sample)

    assert list(members) == [f"{BASE_FOLDER}/{name}" for name in (*PARTS["train"], *PARTS["test"], "batches.meta")]
    assert members[f"{BASE_FOLDER}/batches.meta"][b"label_names"] == [name.encode() for name in CIFAR10_CLASSES]
    for part, names in PARTS.items():
        batches = [members[f"{BASE_FOLDER}/{name}"] for name in names]
        labels = np.concatenate([batch[b"labels"] for batch in batches])
        per_class = PER_CLASS if part == "train" else TEST_PER_CLASS
        assert np.bincount(labels, minlength=10).tolist() == [per_class] * 10
        for batch in batches:
            assert batch[b"data"].dtype == np.uint8 and batch[b"data"].shape == (len(batch[b"labels"]), 3072)
            assert len(batch[b"filenames"]) == len(batch[b"labels"]) and isinstance(batch[b"batch_label"], bytes)


def test_images_differ_within_a_class(sample):
    rows = unpacked(sample)[f"{BASE_FOLDER}/data_batch_1"][b"data"]

    assert len({row.tobytes() for row in rows}) == len(rows)
    assert rows.std() > 30


def test_sample_source_writes_pngs_of_the_packed_pixels(paths, sample):
    members = unpacked(sample)
    data = Cifar10Data(sample_per_class=PER_CLASS, sample_test_per_class=TEST_PER_CLASS)

    count = download("cifar10", data, 3, paths).samples

    frame = read_samples(paths, "cifar10")
    assert count == len(frame) == 10 * (PER_CLASS + TEST_PER_CLASS)
    assert frame.groupby("part")["class"].value_counts().unstack().to_dict("index") == {
        "test": dict.fromkeys(CIFAR10_CLASSES, TEST_PER_CLASS),
        "train": dict.fromkeys(CIFAR10_CLASSES, PER_CLASS),
    }
    first = members[f"{BASE_FOLDER}/data_batch_1"]
    with zipfile.ZipFile(paths.raw_archive("cifar10")) as archive:
        png = archive.read(f"train/{CIFAR10_CLASSES[first[b'labels'][0]]}/00000.png")
    rgb = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    assert np.array_equal(rgb, first[b"data"][0].reshape(3, 32, 32).transpose(1, 2, 0))


def test_sample_source_is_byte_identical_for_the_same_seed(tmp_path):
    data = Cifar10Data(sample_per_class=1, sample_test_per_class=1)
    first, second = Paths(tmp_path / "a"), Paths(tmp_path / "b")

    download("cifar10", data, 9, first)
    download("cifar10", data, 9, second)

    assert first.raw_archive("cifar10").read_bytes() == second.raw_archive("cifar10").read_bytes()
