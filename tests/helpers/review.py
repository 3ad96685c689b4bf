"""A dataset with an audit's findings, for the reviews (terminal and browser): a small planted tree downloaded into
the raw layout, and findings written as the audit writes them from what was planted (its moved images as label
issues, its blanks as outliers and as dark images, its copies as near-duplicate pairs), without training folds."""

from pathlib import Path

import pandas as pd
import yaml

from pipeline.config.params import Params, parse_params
from pipeline.core.paths import Paths
from pipeline.stages.download import download
from tests.helpers.params import tiny_raw
from tests.helpers.planted import Planted, planted, write_planted

DATASET = "planted"


def small_tree() -> Planted:
    """Three classes of 8 images, 2 near-copies, 2 moved images, 2 blanks."""
    return planted(per_class=8, copies=2, moved=2, blanks=2)


def review_params(root: Path, **split_keys: str) -> Params:
    """Params with the `planted` dataset read from `root / "tree"`, written to `root / "params.yaml"` too, for the
    command line."""
    raw = tiny_raw(**{f"data.{DATASET}": {"source": "local", "path": str(root / "tree"), "layout": "class_folders"}})
    raw["split"][DATASET] = {"train": None, "val": 0.25, "test": 0.25, **split_keys}
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    return parse_params(raw)


def audited(paths: Paths, tree: Planted) -> Params:
    """The tree downloaded under `paths` and its findings written into the audit's folder; returns the params."""
    write_planted(paths.root / "tree", tree)
    params = review_params(paths.root)
    download(DATASET, params.data[DATASET], params.seed, paths)
    folder = paths.audit_dir(DATASET)
    folder.mkdir(parents=True)
    moved = sorted(tree.moved)
    _write(folder / "label_issues.csv", path=moved, given=[p.split("/")[0] for p in moved],
           suggested=[tree.moved[p] for p in moved], score=[0.9, 0.8][: len(moved)], split=["train"] * len(moved))
    _write(folder / "outliers.csv", path=tree.blanks, score=[0.99] * len(tree.blanks), split=["val"] * len(tree.blanks))
    _write(folder / "image_quality.csv", path=tree.blanks, issue=["dark"] * len(tree.blanks),
           score=[0.95] * len(tree.blanks), split=["val"] * len(tree.blanks))
    _write(folder / "near_duplicates.csv", path_a=[a for a, _ in tree.copies], path_b=[b for _, b in tree.copies],
           distance=[12] * len(tree.copies), splits=["train/test"] * len(tree.copies))
    return params


def _write(file: Path, **columns: list) -> None:
    pd.DataFrame(columns).to_csv(file, index=False, lineterminator="\n")
