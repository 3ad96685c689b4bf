"""Stage `split`: balanced, shuffled, seeded train/val/test manifests (CSV: path, label, class).

Each class contributes exactly `train`, `val` and `test` images, drawn without replacement, so no image is in two
splits. The per-split class counts go to a metrics JSON and to one bar chart per split.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.atomic import atomic_path, write_json
from pipeline.datasets import dataset_spec
from pipeline.errors import PipelineError
from pipeline.params import CountSplit
from pipeline.paths import SPLITS, Paths
from pipeline.rawdata import list_images

COLUMNS = ["path", "label", "class"]


def split(dataset: str, sizes: CountSplit, seed: int, paths: Paths) -> dict[str, dict[str, int]]:
    """Write the three manifests and their class counts; returns {split: {class: count}}."""
    spec = dataset_spec(dataset)
    archive = paths.raw_archive(dataset)
    images = list_images(archive, spec)
    _check_enough(images, spec.classes, sizes, dataset, archive)
    manifests = _draw(images, spec.classes, sizes, np.random.default_rng(seed))
    with atomic_path(paths.manifest_dir(dataset)) as folder:
        folder.mkdir()
        for name, frame in manifests.items():
            frame.to_csv(folder / f"{name}.csv", index=False, lineterminator="\n")
    counts = {name: frame["class"].value_counts().reindex(spec.classes).to_dict() for name, frame in manifests.items()}
    _write_counts(counts, paths, dataset)
    return counts


def read_manifest(paths: Paths, dataset: str, split_name: str) -> pd.DataFrame:
    """Read one split's manifest, with an error that says which stage to run when it is missing."""
    path = paths.manifest(dataset, split_name)
    if not path.is_file():
        raise PipelineError(f"{path}: manifest not found; run the split stage first")
    return pd.read_csv(path, dtype={"path": str, "label": np.int64, "class": str})


def _check_enough(
    images: pd.DataFrame, classes: tuple[str, ...], sizes: CountSplit, dataset: str, archive: Path
) -> None:
    need = sizes.train + sizes.val + sizes.test
    have = images["class"].value_counts().reindex(classes, fill_value=0)
    if (have < need).any():
        found = ", ".join(f"{cls}: {count}" for cls, count in have.items())
        raise PipelineError(
            f"split.{dataset}: each class needs train + val + test = {sizes.train} + {sizes.val} + {sizes.test} = "
            f"{need} images, but {archive} has {found}; lower split.{dataset}.train/val/test or add images"
        )


def _draw(
    images: pd.DataFrame, classes: tuple[str, ...], sizes: CountSplit, rng: np.random.Generator
) -> dict[str, pd.DataFrame]:
    bounds = np.cumsum([0, sizes.train, sizes.val, sizes.test])
    parts: dict[str, list[pd.DataFrame]] = {name: [] for name in SPLITS}
    for label, cls in enumerate(classes):
        rows = images[images["class"] == cls]
        chosen = rows.iloc[rng.permutation(len(rows))[: bounds[-1]]].assign(label=label)
        for name, start, stop in zip(SPLITS, bounds[:-1], bounds[1:], strict=True):
            parts[name].append(chosen.iloc[start:stop])
    manifests = {}
    for name, frames in parts.items():
        frame = pd.concat(frames, ignore_index=True)
        manifests[name] = frame.iloc[rng.permutation(len(frame))][COLUMNS].reset_index(drop=True)
    return manifests


def _write_counts(counts: dict[str, dict[str, int]], paths: Paths, dataset: str) -> None:
    summary = {name: {**per_class, "total": sum(per_class.values())} for name, per_class in counts.items()}
    write_json(paths.split_metrics(dataset), summary)
    with atomic_path(paths.split_plots(dataset)) as folder:
        folder.mkdir()
        for name, per_class in counts.items():
            table = pd.DataFrame({"class": list(per_class), "count": list(per_class.values())})
            table.to_csv(folder / f"{name}.csv", index=False, lineterminator="\n")
