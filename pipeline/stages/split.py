"""Stage `split`: shuffled, seeded train/val/test manifests (CSV: path, label, class) from the raw samples.

Any dataset, one strategy (`pipeline.data.splitting`): integers in `split.<name>` are images per class (balanced,
dogs-vs-cats' 1000 / 500 / 500), fractions keep each class's share (stratified, for imbalanced data); parts the
source brings (split folders, CIFAR-10's official test set) are kept as given. No image is in two splits, and no
file's content either: identical files are kept out of the later split and listed in `duplicates.csv` beside the
manifests (each copy, the file it repeats and that file's split: a copy in its original's split is kept), and
counted in `metrics/<dataset>/split.json` with the per-split class counts (one bar chart per split).
"""

import numpy as np
import pandas as pd

from pipeline.config.datasets import SplitParams
from pipeline.core.atomic import atomic_path, write_json
from pipeline.core.paths import SPLITS, Paths
from pipeline.data.manifests import COLUMNS
from pipeline.data.raw import read_index, read_samples
from pipeline.data.splitting import Leaks, draw_splits, drop_leaks

DUPLICATES = "duplicates.csv"


def split(dataset: str, sizes: SplitParams, seed: int, paths: Paths) -> dict[str, dict[str, int]]:
    """Write the three manifests, the duplicates found and the class counts; returns the counts as split.json has
    them."""
    classes = read_index(paths, dataset).classes
    samples = read_samples(paths, dataset)
    rng = np.random.default_rng(sizes.draw_seed(seed))
    drawn = draw_splits(samples, classes, sizes, rng, f"split.{dataset}", str(paths.raw_dir(dataset)))
    kept, leaks = drop_leaks(drawn)
    labels = {cls: label for label, cls in enumerate(classes)}
    manifests = {name: _shuffled(kept[name].assign(label=kept[name]["class"].map(labels)), rng) for name in SPLITS}
    with atomic_path(paths.manifest_dir(dataset)) as folder:
        folder.mkdir()
        for name, frame in manifests.items():
            frame.to_csv(folder / f"{name}.csv", index=False, lineterminator="\n")
        pd.DataFrame(leaks.rows, columns=["split", "path", "same_as", "in"]).to_csv(
            folder / DUPLICATES, index=False, lineterminator="\n"
        )
    counts = {
        name: {cls: int(count) for cls, count in frame["class"].value_counts().reindex(classes, fill_value=0).items()}
        for name, frame in manifests.items()
    }
    return _write_counts(counts, leaks, paths, dataset)


def _shuffled(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    return frame.iloc[rng.permutation(len(frame))][COLUMNS].reset_index(drop=True)


def _write_counts(counts: dict[str, dict[str, int]], leaks: Leaks, paths: Paths, dataset: str) -> dict:
    summary: dict = {name: {**per_class, "total": sum(per_class.values())} for name, per_class in counts.items()}
    summary["duplicates"] = {"dropped_from_val": leaks.dropped["val"], "dropped_from_test": leaks.dropped["test"]}
    summary["duplicates"]["within_a_split"] = leaks.within
    write_json(paths.split_metrics(dataset), summary)
    with atomic_path(paths.split_plots(dataset)) as folder:
        folder.mkdir()
        for name, per_class in counts.items():
            table = pd.DataFrame({"class": list(per_class), "count": list(per_class.values())})
            table.to_csv(folder / f"{name}.csv", index=False, lineterminator="\n")
    return summary
