import json

import pandas as pd
import pytest

from pipeline.config.datasets import SplitParams
from pipeline.config.params import Params
from pipeline.core.errors import PipelineError
from pipeline.core.paths import SPLITS, Paths
from pipeline.data.classes import Listing
from pipeline.data.manifests import read_manifest
from pipeline.data.raw import write_index
from pipeline.data.sources.cifar_batches import CIFAR10_CLASSES
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
        assert counts[name] == {"cat": per_class, "dog": per_class, "total": 2 * per_class}


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
    with pytest.raises(PipelineError, match=r"split\.catsdogs: class 'cat' has 12 images .*train 6 \+ val 3 \+ test 4 = 13"):
        split("catsdogs", SplitParams(train=6, val=3, test=4), tiny_params.seed, raw)
    assert not raw.manifest_dir("catsdogs").exists()


def test_split_metrics_json_counts_every_split(raw, tiny_params):
    _split(raw, tiny_params)
    summary = json.loads(raw.split_metrics("catsdogs").read_text())
    assert summary == {
        "train": {"cat": 6, "dog": 6, "total": 12},
        "val": {"cat": 3, "dog": 3, "total": 6},
        "test": {"cat": 3, "dog": 3, "total": 6},
        "duplicates": {"dropped_from_val": 0, "dropped_from_test": 0, "within_a_split": 0},
        "unusable": {"cat": 0, "dog": 0, "total": 0},
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


def _raw(
    paths: Paths, rows: list[tuple[str, str, str, str]], dataset: str = "own", skips: dict[str, str] | None = None
) -> Paths:
    """A raw dataset as download writes it, `(path, class, part, sha256)` rows, usable but for the paths `skips`
    gives a reason (split never reads the images)."""
    frame = pd.DataFrame(rows, columns=["path", "class", "part", "sha256"])
    frame["skip"] = [(skips or {}).get(path, "") for path in frame["path"]]
    classes = tuple(sorted(set(frame["class"])))
    paths.raw_dir(dataset).mkdir(parents=True)
    write_index(paths.raw_dir(dataset), "images", Listing("class_folders", [], classes, {}), frame)
    return paths


def _images(counts: dict[str, int], part: str = "") -> list[tuple[str, str, str, str]]:
    """`count` rows of each class, every one with its own content hash."""
    return [(f"{part or 'all'}/{cls}/{n}.jpg", cls, part, f"{part}{cls}{n}") for cls, count in counts.items() for n in range(count)]


def _counts(paths: Paths, dataset: str = "own") -> dict[str, dict[str, int]]:
    return {name: read_manifest(paths, dataset, name)["class"].value_counts().to_dict() for name in SPLITS}


def test_a_given_test_part_is_kept_and_val_is_held_out_of_train(paths):
    _raw(paths, _images(dict.fromkeys(CIFAR10_CLASSES, 20), "train") + _images(dict.fromkeys(CIFAR10_CLASSES, 5), "test"))
    split("own", SplitParams(val=0.1), 0, paths)
    assert _counts(paths) == {
        "train": dict.fromkeys(CIFAR10_CLASSES, 18), "val": dict.fromkeys(CIFAR10_CLASSES, 2),
        "test": dict.fromkeys(CIFAR10_CLASSES, 5),
    }
    manifests = {name: read_manifest(paths, "own", name) for name in SPLITS}
    assert manifests["test"]["path"].str.startswith("test/").all()
    assert not set(manifests["train"]["path"]) & set(manifests["val"]["path"])
    frame = pd.concat(manifests.values())
    assert (frame["label"] == frame["class"].map(CIFAR10_CLASSES.index)).all()


def test_fractions_keep_each_classs_share_of_an_imbalanced_dataset(paths):
    _raw(paths, _images({"common": 200, "rare": 20}))
    split("own", SplitParams(val=0.15, test=0.15), 0, paths)
    assert _counts(paths) == {
        "train": {"common": 140, "rare": 14}, "val": {"common": 30, "rare": 3}, "test": {"common": 30, "rare": 3}
    }


def test_integers_balance_the_splits_and_train_null_takes_the_rest(paths):
    _raw(paths, _images({"common": 200, "rare": 20}))
    split("own", SplitParams(val=5, test=5), 0, paths)
    assert _counts(paths) == {"train": {"common": 190, "rare": 10}, "val": {"common": 5, "rare": 5}, "test": {"common": 5, "rare": 5}}


def test_only_usable_images_are_drawn_and_the_unusable_ones_are_counted(paths):
    rows = _images({"a": 10, "b": 8}) + _images({"a": 2, "b": 3}, "test")
    unusable = {"all/a/0.jpg": "empty file", "all/a/5.jpg": "not a decodable image", "test/b/1.jpg": "empty file"}
    _raw(paths, rows, skips=unusable)

    summary = split("own", SplitParams(train=5, val=2), 0, paths)  # the test part is given

    assert _counts(paths) == {"train": {"a": 5, "b": 5}, "val": {"a": 2, "b": 2}, "test": {"a": 2, "b": 2}}
    drawn = {path for name in SPLITS for path in read_manifest(paths, "own", name)["path"]}
    assert not drawn & set(unusable) and len(drawn) == 18
    assert summary["unusable"] == {"a": 2, "b": 1, "total": 3}
    assert json.loads(paths.split_metrics("own").read_text())["unusable"] == summary["unusable"]


def test_a_class_too_small_for_the_fractions_is_named(paths):
    _raw(paths, _images({"big": 50, "tiny": 2}))
    with pytest.raises(PipelineError, match=r"split\.own: class 'tiny' has 2 images .*at least 1 for train = 3"):
        split("own", SplitParams(), 0, paths)


def test_split_folders_are_used_as_given_and_capped(paths):
    _raw(paths, _images({"a": 30, "b": 30}, "train") + _images({"a": 7, "b": 9}, "val") + _images({"a": 4, "b": 4}, "test"))
    split("own", SplitParams(val=0.3, test=0.3, max_train_per_class=20, max_val_per_class=8), 0, paths)
    assert _counts(paths) == {"train": {"a": 20, "b": 20}, "val": {"a": 7, "b": 8}, "test": {"a": 4, "b": 4}}


def test_a_split_is_seeded_by_its_own_seed_when_it_has_one(paths):
    _raw(paths, _images({"a": 30, "b": 30}))
    split("own", SplitParams(seed=43), 0, paths)
    first = _manifest_bytes(paths, "own")
    split("own", SplitParams(seed=43), 99, paths)
    assert _manifest_bytes(paths, "own") == first
    split("own", SplitParams(seed=44), 0, paths)
    assert _manifest_bytes(paths, "own") != first


def test_identical_files_are_kept_out_of_the_later_split_and_reported(paths):
    rows = _images({"a": 20, "b": 20}, "train") + _images({"a": 5, "b": 5}, "test")
    rows[-1] = ("test/b/copy.jpg", "b", "test", rows[0][3])  # the same bytes as the first training image
    rows.append(("train/a/again.jpg", "a", "train", rows[1][3]))  # a copy within the training part (seed 0 draws both)
    _raw(paths, rows)

    summary = split("own", SplitParams(val=0.25), 0, paths)

    assert summary["duplicates"] == {"dropped_from_val": 0, "dropped_from_test": 1, "within_a_split": 1}
    assert "test/b/copy.jpg" not in set(read_manifest(paths, "own", "test")["path"])
    listed = pd.read_csv(paths.manifest_dir("own") / "duplicates.csv")
    assert listed.to_dict("records") == [
        {"split": "train", "path": rows[1][0], "same_as": "train/a/again.jpg", "in": "train"},  # kept, within a split
        {"split": "test", "path": "test/b/copy.jpg", "same_as": rows[0][0], "in": "train"},  # dropped from test
    ]
    assert json.loads(paths.split_metrics("own").read_text())["duplicates"] == summary["duplicates"]
