"""Stage `split`: shuffled, seeded train/val/test manifests (CSV: path, label, class) from the raw samples.

Any dataset, one strategy (`pipeline.data.splitting`): integers in `split.<name>` are images per class (balanced,
dogs-vs-cats' 1000 / 500 / 500), fractions keep each class's share (stratified, for imbalanced data); parts the
source brings (split folders, CIFAR-10's official test set) are kept as given. No image is in two splits, and no
file's content either: identical files are kept out of the later split and listed in `duplicates.csv` beside the
manifests (each copy, the file it repeats and that file's split: a copy in its original's split is kept), and
counted in `metrics/<dataset>/split.json` with the per-split class counts (one bar chart per split). With the
dataset's audit looking for near-duplicates (`near`), `pipeline.data.near_duplicates` finds the same shot saved
again, resized, recompressed, cropped, colour-shifted or mirrored: every pair is listed in `near_duplicates.csv`, and with `near_duplicates:
drop_across` the copy in the later split is left out. The reviewed `exclude` and `relabel` files apply after the draw.

Only usable images are drawn: those download judged unusable (a `skip` reason in `samples.csv`) are left out first,
and counted per class in `split.json` (`unusable`: each class's count and the `total`; their reasons are in
`samples.csv` and the download stage's line).
"""

import numpy as np
import pandas as pd

from pipeline.config.datasets import SplitParams
from pipeline.config.params import Params
from pipeline.core.atomic import atomic_path, write_json
from pipeline.core.paths import SPLITS, Paths
from pipeline.data.manifests import COLUMNS, PAIR_COLUMNS
from pipeline.data.archive import open_archive
from pipeline.data.near_duplicates import archive_signatures, near_pairs
from pipeline.data.raw import read_index, read_samples
from pipeline.data.reviews import apply_reviews, read_exclusions, read_relabels
from pipeline.data.splitting import (
    Leaks,
    NearDuplicates,
    draw_splits,
    drop_leaks,
    drop_near_duplicates,
    set_apart_unusable,
)
from pipeline.stages.command import dataset_named, stage_command

DUPLICATES, NEAR_DUPLICATES = "duplicates.csv", "near_duplicates.csv"


def split(
    dataset: str, sizes: SplitParams, seed: int, paths: Paths, near: tuple[int, float] | None = None
) -> dict[str, dict[str, int]]:
    """Write the three manifests, the duplicates found and the class counts; returns the counts as split.json has
    them. `near`: how many closest candidates each image's near-duplicates are looked for among and the least their
    aligned thumbnails correlate (None: near-duplicates are not looked for)."""
    index, key = read_index(paths, dataset), f"split.{dataset}"
    classes = index.classes
    samples, unusable = set_apart_unusable(read_samples(paths, dataset), classes)
    rng = np.random.default_rng(sizes.draw_seed(seed))
    drawn = draw_splits(samples, classes, sizes, rng, key, str(paths.raw_dir(dataset)))
    kept, leaks = drop_leaks(drawn)
    excluded = read_exclusions(sizes.exclude, f"{key}.exclude")
    relabelled = read_relabels(sizes.relabel, classes, f"{key}.relabel")
    kept = {name: apply_reviews(frame, excluded, relabelled) for name, frame in kept.items()}
    found = NearDuplicates(pd.DataFrame(columns=[*PAIR_COLUMNS, "dropped"]))
    if near is not None and index.kind == "images":
        kept, found = drop_near_duplicates(
            kept, _near_pairs(paths, dataset, kept, near), sizes.near_duplicates == "drop_across"
        )
    labels = {cls: label for label, cls in enumerate(classes)}
    manifests = {name: _shuffled(kept[name].assign(label=kept[name]["class"].map(labels)), rng) for name in SPLITS}
    with atomic_path(paths.manifest_dir(dataset)) as folder:
        folder.mkdir()
        for name, frame in manifests.items():
            frame.to_csv(folder / f"{name}.csv", index=False, lineterminator="\n")
        pd.DataFrame(leaks.rows, columns=["split", "path", "same_as", "in"]).to_csv(
            folder / DUPLICATES, index=False, lineterminator="\n"
        )
        found.pairs.to_csv(folder / NEAR_DUPLICATES, index=False, lineterminator="\n")
    counts = {
        name: {cls: int(count) for cls, count in frame["class"].value_counts().reindex(classes, fill_value=0).items()}
        for name, frame in manifests.items()
    }
    summary = {**_counts(counts, leaks), "unusable": unusable}
    if sizes.exclude or sizes.relabel:
        summary["reviewed"] = {"excluded": len(excluded), "relabelled": len(relabelled)}
    if near is not None:
        dropped = {f"dropped_from_{name}": count for name, count in found.dropped.items()}
        summary["near_duplicates"] = {**dropped, "within_a_split": found.within, "pairs": len(found.pairs)}
    return _write_counts(summary, counts, paths, dataset)


def _near_pairs(paths: Paths, dataset: str, splits: dict[str, pd.DataFrame], near: tuple[int, float]) -> pd.DataFrame:
    """The near-duplicate pairs among the splits' images, by path, closest first."""
    members = [path for name in SPLITS for path in splits[name]["path"]]
    with open_archive(paths.raw_archive(dataset)) as archive:
        names, signatures = archive_signatures(archive, members)
    pairs = near_pairs(signatures, *near)
    named = {"path_a": [names[i] for i in pairs["a"]], "path_b": [names[i] for i in pairs["b"]]}
    return pd.DataFrame({**named, "distance": pairs["distance"]})


def _shuffled(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    return frame.iloc[rng.permutation(len(frame))][COLUMNS].reset_index(drop=True)


def _counts(counts: dict[str, dict[str, int]], leaks: Leaks) -> dict:
    summary: dict = {name: {**per_class, "total": sum(per_class.values())} for name, per_class in counts.items()}
    summary["duplicates"] = {"dropped_from_val": leaks.dropped["val"], "dropped_from_test": leaks.dropped["test"]}
    summary["duplicates"]["within_a_split"] = leaks.within
    return summary


def _write_counts(summary: dict, counts: dict[str, dict[str, int]], paths: Paths, dataset: str) -> dict:
    write_json(paths.split_metrics(dataset), summary)
    with atomic_path(paths.split_plots(dataset)) as folder:
        folder.mkdir()
        for name, per_class in counts.items():
            table = pd.DataFrame({"class": list(per_class), "count": list(per_class.values())})
            table.to_csv(folder / f"{name}.csv", index=False, lineterminator="\n")
    return summary


def split_named(dataset: str, params: Params) -> dict[str, dict[str, int]]:
    """Split the dataset named, as its command does: its `split` block, and near-duplicates looked for when its
    audit asks; returns the counts."""
    name = dataset_named(params, dataset)
    return split(name, params.split[name], params.seed, Paths(), near=params.near_duplicates(name))


if __name__ == "__main__":
    stage_command(split_named)
