"""Stage `split`: balanced, shuffled, seeded train/val/test manifests (CSV: path, label, class).

Two strategies, chosen by the dataset's params block:
- `CountSplit` (dogs-vs-cats): each class gives exactly `train`, `val` and `test` images from one pool, drawn
  without replacement with the global seed.
- `HoldoutSplit` (CIFAR-10): the official test set is the test split; `val_fraction` of the official training set
  is held out as validation with the split's own seed. Every class contributes as many images as the smallest
  class has (capped by `max_train_per_class` / `max_test_per_class`), so the splits stay balanced.
No image is in two splits. The per-split class counts go to a metrics JSON and to one bar chart per split.
"""

import numpy as np
import pandas as pd

from pipeline.config.datasets import CountSplit, HoldoutSplit
from pipeline.core.atomic import atomic_path, write_json
from pipeline.core.errors import PipelineError
from pipeline.core.paths import SPLITS, Paths
from pipeline.data.archive import raw_samples
from pipeline.data.manifests import COLUMNS
from pipeline.data.specs import DatasetSpec, dataset_spec


def split(dataset: str, sizes: CountSplit | HoldoutSplit, seed: int, paths: Paths) -> dict[str, dict[str, int]]:
    """Write the three manifests and their class counts; returns {split: {class: count}}."""
    spec = dataset_spec(dataset)
    archive, samples = raw_samples(paths, spec)
    images = samples.assign(label=lambda frame: frame["class"].map(spec.classes.index))
    if isinstance(sizes, HoldoutSplit):
        rng = np.random.default_rng(sizes.seed)
        chosen = _holdout(images, spec, sizes, str(archive), rng)
    else:
        rng = np.random.default_rng(seed)
        chosen = _count(images, spec, sizes, str(archive), rng)
    manifests = {name: _shuffled(chosen[name], rng) for name in SPLITS}
    with atomic_path(paths.manifest_dir(dataset)) as folder:
        folder.mkdir()
        for name, frame in manifests.items():
            frame.to_csv(folder / f"{name}.csv", index=False, lineterminator="\n")
    counts = {
        name: {cls: int(count) for cls, count in frame["class"].value_counts().reindex(spec.classes).items()}
        for name, frame in manifests.items()
    }
    _write_counts(counts, paths, dataset)
    return counts


def _count(
    images: pd.DataFrame, spec: DatasetSpec, sizes: CountSplit, archive: str, rng: np.random.Generator
) -> dict[str, pd.DataFrame]:
    need = sizes.train + sizes.val + sizes.test
    have = _per_class(images, spec)
    if (have < need).any():
        raise PipelineError(
            f"split.{spec.name}: each class needs train + val + test = {sizes.train} + {sizes.val} + {sizes.test} = "
            f"{need} images, but {archive} has {_listed(have)}; lower split.{spec.name}.train/val/test or add images"
        )
    bounds = np.cumsum([0, sizes.train, sizes.val, sizes.test])
    parts: dict[str, list[pd.DataFrame]] = {name: [] for name in SPLITS}
    for cls in spec.classes:
        drawn = _draw(images[images["class"] == cls], need, rng)
        for name, start, stop in zip(SPLITS, bounds[:-1], bounds[1:], strict=True):
            parts[name].append(drawn.iloc[start:stop])
    return {name: pd.concat(frames) for name, frames in parts.items()}


def _holdout(
    images: pd.DataFrame, spec: DatasetSpec, sizes: HoldoutSplit, archive: str, rng: np.random.Generator
) -> dict[str, pd.DataFrame]:
    pool, test = images[images["part"] == "train"], images[images["part"] == "test"]
    train_count = _balanced_count(pool, spec, sizes.max_train_per_class, 2, f"official training images in {archive}")
    test_count = _balanced_count(test, spec, sizes.max_test_per_class, 1, f"official test images in {archive}")
    val_count = min(max(1, round(train_count * sizes.val_fraction)), train_count - 1)
    parts: dict[str, list[pd.DataFrame]] = {name: [] for name in SPLITS}
    for cls in spec.classes:
        drawn = _draw(pool[pool["class"] == cls], train_count, rng)
        parts["val"].append(drawn.iloc[:val_count])
        parts["train"].append(drawn.iloc[val_count:])
        parts["test"].append(_draw(test[test["class"] == cls], test_count, rng))
    return {name: pd.concat(frames) for name, frames in parts.items()}


def _balanced_count(images: pd.DataFrame, spec: DatasetSpec, cap: int | None, minimum: int, what: str) -> int:
    have = _per_class(images, spec)
    if (have < minimum).any():
        raise PipelineError(
            f"split.{spec.name}: every class needs at least {minimum} {what}, but there are {_listed(have)}; "
            f"check that data.{spec.name} points at the whole dataset"
        )
    return int(min(have.min(), cap or have.min()))


def _per_class(images: pd.DataFrame, spec: DatasetSpec) -> pd.Series:
    return images["class"].value_counts().reindex(spec.classes, fill_value=0)


def _listed(counts: pd.Series) -> str:
    return ", ".join(f"{cls}: {count}" for cls, count in counts.items())


def _draw(rows: pd.DataFrame, count: int, rng: np.random.Generator) -> pd.DataFrame:
    return rows.iloc[rng.permutation(len(rows))[:count]]


def _shuffled(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    return frame.iloc[rng.permutation(len(frame))][COLUMNS].reset_index(drop=True)


def _write_counts(counts: dict[str, dict[str, int]], paths: Paths, dataset: str) -> None:
    summary = {name: {**per_class, "total": sum(per_class.values())} for name, per_class in counts.items()}
    write_json(paths.split_metrics(dataset), summary)
    with atomic_path(paths.split_plots(dataset)) as folder:
        folder.mkdir()
        for name, per_class in counts.items():
            table = pd.DataFrame({"class": list(per_class), "count": list(per_class.values())})
            table.to_csv(folder / f"{name}.csv", index=False, lineterminator="\n")
