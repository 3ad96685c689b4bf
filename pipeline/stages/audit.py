"""Stage `audit`: a dataset's near-duplicates, likely label errors and outliers, written into
`metrics/<dataset>/audit/` for review (`pipeline audit review`), each a CSV, most suspect first.

- `near_duplicates.csv` (`path_a,path_b,distance,splits`): the pairs the split found (`pipeline.data.near_duplicates`;
  `distance`: 1 minus their aligned similarity, in thousandths), within a split or across (`drop_across` left the later copy out of its split already).
- `label_issues.csv` (`path,given,suggested,score,split`) and `outliers.csv` (`path,score,split`): from
  `folds` models of the audit's model trained by cross-validation on train + val for the audit's `epochs`
  (`pipeline.stages.audit_folds`), read by cleanlab (`pipeline.analysis.audit_findings`). The test split is scored by
  models that never saw it. A table is audited for label issues only.
- `image_quality.csv` (`path,issue,score,split`): dark, light (overexposed), blurry, low_information
  (near-constant), odd_size and odd_aspect_ratio images, by cleanvision over the raw images
  (`pipeline.analysis.audit_quality`); `score` is cleanvision's, 0 to 1, lower worse, the most severe first.
- `summary.json` (counts per kind and split, image-quality counts per issue, and the class balance: each class's
  images per split, the largest class over the smallest, the rarest's share over an even share; a warning line on
  stderr names a class below `imbalance_warning` times an even share) and `plots/` (the top suspects, the pairs side
  by side, the worst images of each quality issue).
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.analysis.audit_findings import (
    LABEL_COLUMNS,
    OUTLIER_COLUMNS,
    QUALITY_COLUMNS,
    class_balance,
    counts_by_split,
    label_issues,
    outliers,
)
from pipeline.analysis.audit_plots import pairs_grid, quality_grid, suspects_grid
from pipeline.analysis.plots import save_png
from pipeline.config.audit import AuditParams
from pipeline.config.params import ModelConfig, Params
from pipeline.core.atomic import atomic_path, write_json
from pipeline.core.errors import PipelineError
from pipeline.core.paths import AUDIT_FINDINGS, SPLITS, Paths
from pipeline.data.archive import open_archive
from pipeline.data.images import decode_image
from pipeline.data.manifests import PAIR_COLUMNS, read_manifest
from pipeline.data.store import SplitArrays, load_meta, load_split
from pipeline.stages.command import dataset_named, stage_command

GRID_SIDE = 96  # pixels of each image in the grids


def audit(dataset: str, settings: AuditParams, config: ModelConfig | None, seed: int, paths: Paths) -> dict:
    """Write the audit's findings, summary and grids (see the module's docstring); returns the summary. `config`:
    the model the folds train, with the audit's budget (None when label issues are off)."""
    folder = paths.audit_dir(dataset)
    folder.mkdir(parents=True, exist_ok=True)
    pairs = _near_duplicates(paths, dataset) if settings.near_duplicates else pd.DataFrame(columns=PAIR_COLUMNS)
    suspects, far = pd.DataFrame(columns=LABEL_COLUMNS), pd.DataFrame(columns=OUTLIER_COLUMNS)
    if settings.label_issues and config is not None:
        suspects, far = _label_findings(dataset, settings, config, seed, paths)
    quality = _image_quality(paths, dataset, settings) if settings.image_quality else pd.DataFrame(columns=QUALITY_COLUMNS)
    tables = (pairs, suspects, far, quality)
    for name, table in zip(AUDIT_FINDINGS, tables, strict=True):
        with atomic_path(folder / f"{name}.csv") as tmp:
            table.to_csv(tmp, index=False, lineterminator="\n")
    summary = _summary(paths, dataset, settings, tables)
    write_json(folder / "summary.json", summary)
    _grids(paths, dataset, settings.grid, pairs, suspects, folder / "plots")
    _quality_grid(paths, dataset, settings.grid, quality, folder / "plots")
    return summary


def _summary(paths: Paths, dataset: str, settings: AuditParams, tables: tuple[pd.DataFrame, ...]) -> dict:
    """Each finding's counts by split, the image-quality counts by issue and the class balance; a warning line for
    each class far below the others."""
    pairs, suspects, far, quality = tables
    counts = (counts_by_split(pairs, "splits"), counts_by_split(suspects), counts_by_split(far), counts_by_split(quality))
    summary = dict(zip(AUDIT_FINDINGS, counts, strict=True))
    summary["image_quality_by_issue"] = {str(issue): counts_by_split(rows) for issue, rows in quality.groupby("issue")}
    classes = {split: read_manifest(paths, dataset, split)["class"] for split in SPLITS}
    summary["class_balance"] = balance = class_balance(classes, settings.imbalance_warning)
    for cls in balance["far_below"]:
        print(f"warning: {dataset}: class {cls!r} has {balance['counts']['all'][cls]} images, under "
              f"{settings.imbalance_warning:g} of an even share (audit.{dataset}.imbalance_warning); collect more "
              "or weigh it (train.class_weights: auto)", file=sys.stderr, flush=True)
    return summary


def _image_quality(paths: Paths, dataset: str, settings: AuditParams) -> pd.DataFrame:
    """cleanvision's image-quality findings over the raw images of every split (none for a table)."""
    if not paths.raw_archive(dataset).is_file():
        return pd.DataFrame(columns=QUALITY_COLUMNS)
    from pipeline.analysis.audit_quality import image_quality, opened  # cleanvision: imported only when it runs
    manifests = {split: read_manifest(paths, dataset, split) for split in SPLITS}
    every_path = [path for split in SPLITS for path in manifests[split]["path"]]
    every_split = [split for split in SPLITS for _ in range(len(manifests[split]))]
    with open_archive(paths.raw_archive(dataset)) as archive:
        return image_quality(lambda row: opened(archive.read(every_path[row])), every_path, every_split,
                             settings.quality_thresholds())


def _near_duplicates(paths: Paths, dataset: str) -> pd.DataFrame:
    """The split's near-duplicate pairs, closest first."""
    found = pd.read_csv(paths.manifest_dir(dataset) / "near_duplicates.csv", dtype={"path_a": str, "path_b": str})
    return found[PAIR_COLUMNS]


def _label_findings(
    dataset: str, settings: AuditParams, config: ModelConfig, seed: int, paths: Paths
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Label issues (train + val, then test) and outliers (all splits), from the cross-validated models."""
    from pipeline.core.runtime import pick_device  # torch and the training code: imported only when label issues
    from pipeline.models.pretrained import stage_weights  # are looked for, so the sample's audit takes a second
    from pipeline.stages.audit_folds import cross_val_scores
    meta = load_meta(paths, dataset)
    splits = {name: load_split(paths, dataset, name) for name in SPLITS}
    names = {name: _kept_paths(paths, dataset, name) for name in SPLITS}
    pool = SplitArrays(
        np.concatenate([splits["train"].inputs, splits["val"].inputs]),
        np.concatenate([splits["train"].labels, splits["val"].labels]),
    )
    device = pick_device(config.train.device)
    weights = stage_weights(paths, config)  # the folds start where train@<model> starts
    scores = cross_val_scores(config, meta, pool, splits["test"], settings.folds, seed, device, weights)
    pool_paths = names["train"] + names["val"]
    pool_splits = ["train"] * len(names["train"]) + ["val"] * len(names["val"])
    classes = tuple(meta.classes)
    suspects = pd.concat([
        label_issues(pool_paths, pool.labels, scores.pool, classes, pool_splits),
        label_issues(names["test"], splits["test"].labels, scores.held_out, classes, ["test"] * len(names["test"])),
    ]).sort_values(["score", "path"], ascending=[False, True], kind="stable").reset_index(drop=True)
    every_path, every_split = pool_paths + names["test"], pool_splits + ["test"] * len(names["test"])
    far = pd.concat([
        outliers([every_path[r] for r in rows], features, settings.outlier_fence, [every_split[r] for r in rows])
        for rows, features in scores.features
    ])
    return suspects, far.sort_values(["score", "path"], ascending=[False, True], kind="stable").reset_index(drop=True)


def _kept_paths(paths: Paths, dataset: str, split: str) -> list[str]:
    """The paths of a split's preprocessed rows, in their order: its manifest less the images preprocess skipped."""
    manifest = read_manifest(paths, dataset, split)
    skipped_file = paths.processed_dir(dataset) / "skipped.csv"
    if not skipped_file.is_file():
        return [str(path) for path in manifest["path"]]
    skipped = pd.read_csv(skipped_file, dtype=str)
    left_out = set(skipped.loc[skipped["split"] == split, "path"])
    return [str(path) for path in manifest["path"] if path not in left_out]


def _grids(paths: Paths, dataset: str, limit: int, pairs: pd.DataFrame, suspects: pd.DataFrame, folder: Path) -> None:
    """The top suspects and the closest pairs as image grids (images only: a table has none)."""
    folder.mkdir(exist_ok=True)
    if not paths.raw_archive(dataset).is_file():
        return
    top, closest = suspects.head(limit), pairs.head(max(1, limit // 2))
    wanted = list(top["path"]) + [path for row in closest.itertuples() for path in (row.path_a, row.path_b)]
    with open_archive(paths.raw_archive(dataset)) as archive:
        images = [decode_image(archive.read(path), GRID_SIDE, "rgb") for path in wanted]
    blank = np.zeros((GRID_SIDE, GRID_SIDE, 3), np.uint8)
    images = np.stack([blank if image is None else image for image in images] or [blank])
    save_png(suspects_grid(images[: len(top)], top, f"{dataset}: label suspects (given -> suggested, score)"),
             folder / "label_issues.png")
    save_png(pairs_grid(images[len(top) : len(wanted)], closest, f"{dataset}: near-duplicate pairs"),
             folder / "near_duplicates.png")


def _quality_grid(paths: Paths, dataset: str, limit: int, quality: pd.DataFrame, folder: Path) -> None:
    """The worst images of each quality issue found (a row of at most `limit // 4` each), titled with the issue and
    score; no file when none was found."""
    per_issue = max(1, limit // 4)
    worst = quality.groupby("issue", sort=False).head(per_issue).reset_index(drop=True)
    target = folder / "image_quality.png"
    target.unlink(missing_ok=True)
    if worst.empty:
        return
    with open_archive(paths.raw_archive(dataset)) as archive:
        images = [decode_image(archive.read(path), GRID_SIDE, "rgb", "pad") for path in worst["path"]]
    blank = np.zeros((GRID_SIDE, GRID_SIDE, 3), np.uint8)
    images = np.stack([blank if image is None else image for image in images])
    save_png(quality_grid(images, worst, f"{dataset}: image-quality issues (issue, cleanvision score)", per_issue),
             target)


def audit_named(dataset: str, params: Params) -> dict:
    """Audit the dataset named with its `audit` block (its `sample` keys while on the sample) and the model its
    folds train, as its command does; returns the summary."""
    name = dataset_named(params, dataset)
    if name not in params.audit:
        raise PipelineError(f"audit.{name}: no such block in params.yaml; add one to audit {name!r}")
    return audit(name, params.audit_of(name), params.audit_model(name), params.seed, Paths())


if __name__ == "__main__":
    stage_command(audit_named)
