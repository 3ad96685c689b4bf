import cv2
import numpy as np
import pytest

from pipeline.data.sources import sample
from pipeline.data.sources.sample import MAX_SIDE, MIN_SIDE, catsdogs_sample

PER_CLASS = 4


@pytest.fixture(scope="module")
def members() -> list[tuple[str, bytes]]:
    return list(catsdogs_sample(PER_CLASS, seed=3))


def test_yields_cats_then_dogs_in_the_kaggle_layout(members):
    names = [name for name, _ in members]

    assert names == [f"train/cat.{k}.jpg" for k in range(PER_CLASS)] + [f"train/dog.{k}.jpg" for k in range(PER_CLASS)]


def test_members_are_decodable_colour_jpegs_of_bounded_size(members):
    for name, data in members:
        assert data[:3] == b"\xff\xd8\xff", name
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        assert image is not None, name
        height, width, channels = image.shape
        assert channels == 3
        assert MIN_SIDE <= height <= MAX_SIDE and MIN_SIDE <= width <= MAX_SIDE, (name, image.shape)


def test_image_sizes_vary(members):
    shapes = {cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).shape for _, data in members}

    assert len(shapes) > 1


def test_same_seed_gives_identical_bytes(members):
    assert list(catsdogs_sample(PER_CLASS, seed=3)) == members


def test_different_seed_gives_different_images(members):
    other = list(catsdogs_sample(PER_CLASS, seed=4))

    assert [name for name, _ in other] == [name for name, _ in members]
    assert all(a != b for (_, a), (_, b) in zip(other, members, strict=True))


def test_each_image_depends_only_on_seed_class_and_number(members):
    fewer = dict(catsdogs_sample(2, seed=3))

    assert fewer == {name: data for name, data in members if int(name.split(".")[1]) < 2}


def test_worker_processes_draw_the_same_bytes_in_the_same_order(members, monkeypatch):
    monkeypatch.setattr(sample, "PARALLEL_FROM", 0)
    monkeypatch.setattr(sample, "CHUNK", 3)  # several chunks a worker, returned out of order if map did not keep it
    monkeypatch.setattr(sample.os, "sched_getaffinity", lambda pid: {0, 1})
    assert list(catsdogs_sample(PER_CLASS, seed=3)) == members


def test_zero_per_class_yields_nothing():
    assert list(catsdogs_sample(0, seed=1)) == []
