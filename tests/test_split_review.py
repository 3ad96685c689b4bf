"""Split with the audit's findings: near-duplicates kept out of later splits, reviewed exclusions and relabels."""

import json

import pandas as pd
import pytest

from pipeline.config.params import Params, parse_params
from pipeline.core.errors import PipelineError
from pipeline.core.paths import SPLITS, Paths
from pipeline.data.manifests import read_manifest
from pipeline.stages.download import download
from pipeline.stages.split import split
from tests.helpers.params import tiny_raw
from tests.helpers.planted import Planted, planted, write_planted


@pytest.fixture
def tree() -> Planted:
    return planted(per_class=30, copies=10, moved=0, blanks=0)


def _params(root, **split_keys) -> Params:
    raw = tiny_raw(**{"data.planted": {"source": "local", "path": str(root), "layout": "class_folders"}})
    raw["split"]["planted"] = {"train": None, "val": 0.25, "test": 0.25, **split_keys}
    return parse_params(raw)


def _downloaded(paths: Paths, tree: Planted, **split_keys) -> Params:
    params = _params(write_planted(paths.root / "tree", tree), **split_keys)
    download("planted", params.data["planted"], params.seed, paths)
    return params


def _members(paths: Paths) -> dict[str, set[str]]:
    return {name: set(read_manifest(paths, "planted", name)["path"]) for name in SPLITS}


def test_a_near_duplicate_in_a_later_split_is_dropped_and_listed(paths, tree):
    params = _downloaded(paths, tree)
    summary = split("planted", params.split["planted"], params.seed, paths, near=(36, 0.95))
    pairs = pd.read_csv(paths.manifest_dir("planted") / "near_duplicates.csv")
    assert list(pairs.columns[:4]) == ["path_a", "path_b", "distance", "splits"]
    members = _members(paths)
    planted_pairs = {frozenset(pair) for pair in tree.copies}
    found = {frozenset(pair) for pair in zip(pairs["path_a"], pairs["path_b"], strict=True)}
    assert len(found & planted_pairs) / len(planted_pairs) >= 0.9
    assert found <= planted_pairs
    for a, b in tree.copies:
        where = [name for name in SPLITS if a in members[name] or b in members[name]]
        assert len(where) == 1, (a, b, where)  # never in two splits
    dropped = summary["near_duplicates"]
    assert dropped["dropped_from_val"] + dropped["dropped_from_test"] == (pairs["dropped"].fillna("") != "").sum()


def test_keep_leaves_near_duplicates_in_their_splits(paths, tree):
    params = _downloaded(paths, tree, near_duplicates="keep")
    summary = split("planted", params.split["planted"], params.seed, paths, near=(36, 0.95))
    assert summary["near_duplicates"]["dropped_from_val"] == summary["near_duplicates"]["dropped_from_test"] == 0
    assert sum(len(members) for members in _members(paths).values()) == len(tree.files)


def test_reviewed_files_exclude_and_relabel_after_the_draw(paths, tree, monkeypatch):
    monkeypatch.chdir(paths.root)
    params = _downloaded(paths, tree)
    split("planted", params.split["planted"], params.seed, paths)
    before = {name: read_manifest(paths, "planted", name) for name in SPLITS}
    out, relabel = before["train"]["path"].iloc[0], before["test"]["path"].iloc[0]
    (paths.root / "reviews").mkdir()
    (paths.root / "reviews" / "exclude.csv").write_text(f"path\n{out}\n")
    (paths.root / "reviews" / "relabel.csv").write_text(f"path,label\n{relabel},green\n")
    params = _params(paths.root / "tree", exclude="reviews/exclude.csv", relabel="reviews/relabel.csv")
    summary = split("planted", params.split["planted"], params.seed, paths)
    after = {name: read_manifest(paths, "planted", name) for name in SPLITS}
    assert set(after["train"]["path"]) == set(before["train"]["path"]) - {out}
    assert after["test"].set_index("path").loc[relabel, "class"] == "green"
    assert after["test"].set_index("path").loc[relabel, "label"] == 1
    assert summary["reviewed"] == {"excluded": 1, "relabelled": 1}
    assert json.loads(paths.split_metrics("planted").read_text())["reviewed"]["excluded"] == 1


def test_review_files_live_under_reviews_and_name_real_classes(paths, tree, monkeypatch):
    with pytest.raises(PipelineError, match=r"split\.planted.*exclude.*reviews/"):
        _params(paths.root, exclude="elsewhere/x.csv")
    monkeypatch.chdir(paths.root)
    params = _downloaded(paths, tree, relabel="reviews/relabel.csv")
    (paths.root / "reviews").mkdir()
    (paths.root / "reviews" / "relabel.csv").write_text("path,label\nred/1.png,purple\n")
    with pytest.raises(PipelineError, match=r"split\.planted\.relabel.*purple"):
        split("planted", params.split["planted"], params.seed, paths)
