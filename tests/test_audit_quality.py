"""The audit's image-quality checks (cleanvision) on generated photos with planted problems: dark, blurry and
near-constant images found, clean ones rarely flagged; the stage's CSV, summary, grid and class balance; the keys
that turn it off and tune it."""

import json

import pandas as pd
import pytest
from PIL import Image

from pipeline.analysis.audit_findings import QUALITY_COLUMNS, class_balance
from pipeline.analysis.audit_quality import image_quality
from pipeline.config.audit import AuditParams
from pipeline.config.params import parse_params
from pipeline.core.errors import PipelineError
from pipeline.core.paths import SPLITS, Paths
from pipeline.stages.audit import audit
from pipeline.stages.download import download
from pipeline.stages.split import split
from tests.helpers.params import tiny_raw
from tests.helpers.quality import quality_tree

FOUND_ALWAYS = ("dark", "blurry", "low_information")  # the bar: recall >= 0.9, precision >= 0.7


def _findings(root, tree) -> pd.DataFrame:
    every = tree.clean + [path for paths in tree.planted.values() for path in paths]
    thresholds = AuditParams(model="m").quality_thresholds()
    return image_quality(lambda row: Image.open(root / every[row]), every, ["train"] * len(every), thresholds)


@pytest.mark.parametrize("seed", [0, 1])
def test_planted_dark_blurry_and_constant_images_are_found_and_clean_photos_rarely_flagged(tmp_path, seed):
    tree = quality_tree(tmp_path / "photos", clean=60, each=10, odd=2, seed=seed)
    table = _findings(tmp_path / "photos", tree)
    assert list(table.columns) == QUALITY_COLUMNS
    assert table["score"].is_monotonic_increasing
    planted = {path for paths in tree.planted.values() for path in paths}
    for kind, paths in tree.planted.items():
        flagged = set(table.loc[table["issue"] == kind, "path"])
        recall = len(flagged & set(paths)) / len(paths)
        precision = len(flagged & planted) / max(1, len(flagged))  # another planted problem is no false alarm
        assert recall >= (0.9 if kind in FOUND_ALWAYS else 0.5), (kind, recall, table)
        assert precision >= 0.7, (kind, precision, table)
    assert len(set(table["path"]) & set(tree.clean)) <= 3, table


def test_class_balance_gives_the_counts_the_ratio_and_the_classes_far_below():
    classes = {"train": pd.Series(["a"] * 80 + ["b"] * 80 + ["c"] * 4), "val": pd.Series(["a"] * 10 + ["b"] * 10)}
    balance = class_balance(classes, 0.1)
    assert balance["counts"]["val"] == {"a": 10, "b": 10, "c": 0}
    assert balance["counts"]["all"] == {"a": 90, "b": 90, "c": 4}
    assert balance["largest_to_smallest"] == 22.5
    assert balance["rarest_share_of_even"] == round(4 / (184 / 3), 3)
    assert balance["far_below"] == ["c"]
    assert class_balance(classes, 0.05)["far_below"] == []


def _quality_params(root, **audit_keys):
    return parse_params(tiny_raw(**{
        "data.photos": {"source": "local", "path": str(root), "layout": "class_folders"},
        "split.photos": {"train": None, "val": 0.2, "test": 0.2},
        "preprocess.photos": {"image_size": 24, "color": "rgb"},
        "models.photos_mlp": {"dataset": "photos", "arch": "mlp", "hidden": [8]},
        "audit.photos": {"model": "photos_mlp", "label_issues": False, "near_duplicates": False, **audit_keys},
    }))


def _audited(paths: Paths, rare: str = "", **audit_keys) -> tuple[dict, object]:
    """The audit of a small planted tree (its `rare` class left without its clean photos), and the tree."""
    tree = quality_tree(paths.root / "photos", clean=30, each=4, odd=1)
    for path in [path for path in tree.clean if path.startswith(f"{rare}/")] if rare else []:
        (paths.root / "photos" / path).unlink()
    params = _quality_params(paths.root / "photos", **audit_keys)
    download("photos", params.data["photos"], params.seed, paths)
    split("photos", params.split["photos"], params.seed, paths, near=params.near_duplicates("photos"))
    return audit("photos", params.audit_of("photos"), None, params.seed, paths), tree


def test_the_stage_writes_the_csv_by_split_the_summary_the_grid_and_warns_of_a_rare_class(paths, capsys):
    summary, tree = _audited(paths, rare="shore", imbalance_warning=0.6)
    folder = paths.audit_dir("photos")
    table = pd.read_csv(folder / "image_quality.csv")
    assert list(table.columns) == QUALITY_COLUMNS
    manifests = pd.concat([pd.read_csv(paths.manifest("photos", name)).assign(split=name) for name in SPLITS])
    assert (table["split"] == manifests.set_index("path").loc[table["path"], "split"].to_numpy()).all()
    assert set(tree.planted["dark"]) <= set(table.loc[table["issue"] == "dark", "path"])
    assert summary["image_quality"]["total"] == len(table)
    assert summary["image_quality_by_issue"]["dark"]["total"] == (table["issue"] == "dark").sum()
    assert sum(summary["class_balance"]["counts"]["all"].values()) == len(manifests)
    assert json.loads((folder / "summary.json").read_text()) == summary
    assert (folder / "plots" / "image_quality.png").is_file()
    assert summary["class_balance"]["far_below"] == ["shore"]
    assert "warning: photos: class 'shore'" in capsys.readouterr().err


def test_image_quality_off_writes_an_empty_table_and_no_grid(paths):
    summary, _ = _audited(paths, image_quality=False)
    folder = paths.audit_dir("photos")
    assert list(pd.read_csv(folder / "image_quality.csv").columns) == QUALITY_COLUMNS
    assert summary["image_quality"] == {"total": 0}
    assert not (folder / "plots" / "image_quality.png").exists()


def test_a_threshold_out_of_range_names_its_key():
    with pytest.raises(PipelineError, match=r"audit\.catsdogs\.blurry_threshold"):
        parse_params(tiny_raw(**{"audit.catsdogs": {"model": "catsdogs_cnn", "blurry_threshold": 1.5}}))
