import json

import pandas as pd
import pytest

from pipeline.download import download
from pipeline.errors import PipelineError
from pipeline.params import Params, CountSplit
from pipeline.paths import SPLITS, Paths
from pipeline.split import read_manifest, split


@pytest.fixture
def raw(paths: Paths, tiny_params: Params) -> Paths:
    download("catsdogs", tiny_params.data["catsdogs"], tiny_params.seed, paths)
    return paths


def _split(paths: Paths, params: Params, seed: int | None = None) -> dict:
    return split("catsdogs", params.split["catsdogs"], params.seed if seed is None else seed, paths)


def _manifest_bytes(paths: Paths) -> dict[str, bytes]:
    return {name: paths.manifest("catsdogs", name).read_bytes() for name in SPLITS}


def test_manifests_have_path_label_class_columns(raw, tiny_params):
    _split(raw, tiny_params)
    for name in SPLITS:
        assert list(pd.read_csv(raw.manifest("catsdogs", name)).columns) == ["path", "label", "class"]


def test_each_split_has_the_configured_count_of_every_class(raw, tiny_params):
    counts = _split(raw, tiny_params)
    expected = {"train": 6, "val": 3, "test": 3}
    for name, per_class in expected.items():
        frame = read_manifest(raw, "catsdogs", name)
        assert frame["class"].value_counts().to_dict() == {"cat": per_class, "dog": per_class}
        assert counts[name] == {"cat": per_class, "dog": per_class}


def test_labels_are_the_class_index(raw, tiny_params):
    _split(raw, tiny_params)
    frame = pd.concat(read_manifest(raw, "catsdogs", name) for name in SPLITS)
    assert (frame["label"] == frame["class"].map({"cat": 0, "dog": 1})).all()
    assert (frame["path"].str.extract(r"/(cat|dog)\.")[0] == frame["class"]).all()


def test_no_image_is_in_two_splits(raw, tiny_params):
    _split(raw, tiny_params)
    members = [set(read_manifest(raw, "catsdogs", name)["path"]) for name in SPLITS]
    assert sum(map(len, members)) == len(set.union(*members)) == 24


def test_manifest_rows_are_shuffled_not_grouped_by_class(raw, tiny_params):
    _split(raw, tiny_params)
    classes = read_manifest(raw, "catsdogs", "train")["class"].tolist()
    assert set(classes) == {"cat", "dog"}
    assert classes != sorted(classes)
    assert classes != sorted(classes, reverse=True)


def test_same_seed_gives_byte_identical_manifests(raw, tiny_params):
    _split(raw, tiny_params)
    first = _manifest_bytes(raw)
    _split(raw, tiny_params)
    assert _manifest_bytes(raw) == first


def test_different_seed_gives_a_different_split(raw, tiny_params):
    _split(raw, tiny_params, seed=1)
    first = {name: set(read_manifest(raw, "catsdogs", name)["path"]) for name in SPLITS}
    _split(raw, tiny_params, seed=2)
    second = {name: set(read_manifest(raw, "catsdogs", name)["path"]) for name in SPLITS}
    assert first != second


def test_too_few_images_names_the_counts_and_the_key(raw, tiny_params):
    with pytest.raises(PipelineError, match=r"split\.catsdogs.*13 images.*cat: 12, dog: 12"):
        split("catsdogs", CountSplit(train=6, val=3, test=4), tiny_params.seed, raw)
    assert not raw.manifest_dir("catsdogs").exists()


def test_split_metrics_json_counts_every_split(raw, tiny_params):
    _split(raw, tiny_params)
    summary = json.loads(raw.split_metrics("catsdogs").read_text())
    assert summary == {
        "train": {"cat": 6, "dog": 6, "total": 12},
        "val": {"cat": 3, "dog": 3, "total": 6},
        "test": {"cat": 3, "dog": 3, "total": 6},
    }


def test_split_writes_one_class_count_table_per_split(raw, tiny_params):
    _split(raw, tiny_params)
    folder = raw.split_plots("catsdogs")
    assert sorted(path.name for path in folder.iterdir()) == ["test.csv", "train.csv", "val.csv"]
    assert (folder / "train.csv").read_text() == "class,count\ncat,6\ndog,6\n"
    assert (folder / "val.csv").read_text() == "class,count\ncat,3\ndog,3\n"


def test_read_manifest_of_a_missing_split_says_to_run_split(paths):
    with pytest.raises(PipelineError, match="run the split stage"):
        read_manifest(paths, "catsdogs", "train")
