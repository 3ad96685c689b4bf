import json

import pandas as pd
import pytest

from pipeline.config.datasets import CountSplit, HoldoutSplit
from pipeline.config.params import Params
from pipeline.core.errors import PipelineError
from pipeline.core.paths import SPLITS, Paths
from pipeline.data.archive import write_zip
from pipeline.data.manifests import read_manifest
from pipeline.data.specs import CIFAR10_CLASSES
from pipeline.stages.download import download
from pipeline.stages.split import split


@pytest.fixture
def raw(paths: Paths, tiny_params: Params) -> Paths:
    download("catsdogs", tiny_params.data["catsdogs"], tiny_params.seed, paths)
    return paths


def _split(paths: Paths, params: Params, seed: int | None = None) -> dict:
    return split("catsdogs", params.split["catsdogs"], params.seed if seed is None else seed, paths)


def _manifest_bytes(paths: Paths, dataset: str = "catsdogs") -> dict[str, bytes]:
    return {name: paths.manifest(dataset, name).read_bytes() for name in SPLITS}


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


def _cifar_raw(paths: Paths, train_per_class: dict[str, int], test_per_class: int = 5) -> Paths:
    """A raw CIFAR-10 archive whose members are named as the readers write them (split never decodes them)."""
    members = [
        (f"{part}/{cls}/{number:05d}.png", b"png")
        for part, counts in (("train", train_per_class), ("test", dict.fromkeys(CIFAR10_CLASSES, test_per_class)))
        for cls in CIFAR10_CLASSES
        for number in range(counts.get(cls, 20))
    ]
    write_zip(paths.raw_archive("cifar10"), members)
    return paths


def _holdout_split(paths: Paths, **changes) -> dict:
    return split("cifar10", HoldoutSplit(**changes), 0, paths)


def test_holdout_keeps_the_official_test_set_and_holds_out_val_from_train(paths):
    counts = _holdout_split(_cifar_raw(paths, {}), val_fraction=0.1)
    assert counts["train"] == dict.fromkeys(CIFAR10_CLASSES, 18)
    assert counts["val"] == dict.fromkeys(CIFAR10_CLASSES, 2)
    assert counts["test"] == dict.fromkeys(CIFAR10_CLASSES, 5)
    manifests = {name: read_manifest(paths, "cifar10", name) for name in SPLITS}
    assert manifests["test"]["path"].str.startswith("test/").all()
    assert manifests["train"]["path"].str.startswith("train/").all()
    assert not set(manifests["train"]["path"]) & set(manifests["val"]["path"])
    frame = pd.concat(manifests.values())
    assert (frame["label"] == frame["class"].map(CIFAR10_CLASSES.index)).all()


def test_holdout_balances_classes_to_the_smallest_and_applies_the_caps(paths):
    _cifar_raw(paths, {"cat": 12})
    assert _holdout_split(paths, val_fraction=0.25)["train"] == dict.fromkeys(CIFAR10_CLASSES, 9)
    capped = _holdout_split(paths, val_fraction=0.25, max_train_per_class=8, max_test_per_class=3)
    assert (capped["train"]["dog"], capped["val"]["dog"], capped["test"]["dog"]) == (6, 2, 3)


def test_holdout_is_seeded_by_its_own_seed(paths):
    _cifar_raw(paths, {})
    _holdout_split(paths, seed=43)
    first = _manifest_bytes(paths, "cifar10")
    split("cifar10", HoldoutSplit(seed=43), 99, paths)
    assert _manifest_bytes(paths, "cifar10") == first
    _holdout_split(paths, seed=44)
    assert _manifest_bytes(paths, "cifar10") != first


def test_holdout_without_official_test_images_of_a_class_names_the_counts(paths):
    members = [(f"train/{cls}/{n:05d}.png", b"png") for cls in CIFAR10_CLASSES for n in range(4)]
    write_zip(paths.raw_archive("cifar10"), members + [("test/cat/00000.png", b"png")])
    with pytest.raises(PipelineError, match=r"split\.cifar10: every class needs at least 1 official test.*airplane: 0"):
        _holdout_split(paths)
