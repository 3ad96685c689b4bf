"""How a dataset's samples become train / val / test: seeded draws per class, then the leakage check.

`set_apart_unusable` leaves out first the samples download judged unusable (a `skip` reason in `samples.csv`:
an empty file, not a decodable image, ...) and counts them per class, so that every draw is of usable images: a
balanced 1000 a class gives 1000 images preprocess can decode.

`draw_splits` takes each class in turn. Its pool (the samples of no part, or of the `train` part) is shuffled and
capped at `max_train_per_class`; the parts with a size are cut from it in the order train, val, test (an int is that
many images, a float that fraction of the class, at least one), and a `train: null` takes what is left. A part the
source brings (`val/` or `test/` split folders, CIFAR-10's official test set) is used as given, shuffled and capped
at `max_<part>_per_class`, and its size key is not used. The draws happen in a fixed order from one generator, so
the same samples and seed give the same splits.

`drop_leaks` keeps identical files (same sha256) out of two splits: a val image that is also in train, or a test
image also in train or val, is dropped from the later split; it and any second copy within one split (kept) are
reported. `drop_near_duplicates` does the same for near-duplicates (`pipeline.data.near_duplicates`).
"""

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipeline.config.datasets import SplitParams
from pipeline.core.errors import PipelineError
from pipeline.core.paths import SPLITS
from pipeline.data.manifests import PAIR_COLUMNS

POOL_PARTS = ("", "train")


@dataclass
class Leaks:
    """Identical files found across splits (dropped from the later one) and within one split (kept)."""

    dropped: dict[str, int] = field(default_factory=lambda: {"val": 0, "test": 0})
    within: int = 0
    rows: list[dict[str, str]] = field(default_factory=list)


def set_apart_unusable(samples: pd.DataFrame, classes: tuple[str, ...]) -> tuple[pd.DataFrame, dict[str, int]]:
    """The samples without a `skip` reason, and how many of each class (and in total) have one."""
    unusable = samples["skip"] != ""
    counts = samples.loc[unusable, "class"].value_counts()
    per_class = {cls: int(counts.get(cls, 0)) for cls in classes}
    return samples[~unusable], {**per_class, "total": int(unusable.sum())}


def draw_splits(
    samples: pd.DataFrame, classes: tuple[str, ...], sizes: SplitParams, rng: np.random.Generator, key: str, where: str
) -> dict[str, pd.DataFrame]:
    """The rows of each split, drawn per class as the module says; errors name `key` and the raw data `where`."""
    given = [part for part in ("val", "test") if (samples["part"] == part).any()]
    cut = [part for part in SPLITS if part not in given and getattr(sizes, part) is not None]
    chosen: dict[str, list[pd.DataFrame]] = {name: [] for name in SPLITS}
    pool = samples[samples["part"].isin(POOL_PARTS)]
    for cls in classes:
        rows = _draw(pool[pool["class"] == cls], sizes.cap("train"), rng)
        counts = [_count(getattr(sizes, part), len(rows)) for part in cut]
        needed = sum(counts) + (1 if sizes.train is None else 0)
        if needed > len(rows):
            raise PipelineError(
                f"{key}: class {cls!r} has {len(rows)} images to split, but "
                + " + ".join(f"{part} {count}" for part, count in zip(cut, counts, strict=True))
                + (" + at least 1 for train" if sizes.train is None else "")
                + f" = {needed} are needed ({where}); lower {key}.{'/'.join(cut)}, use fractions, or add images"
            )
        start = 0
        for part, count in zip(cut, counts, strict=True):
            chosen[part].append(rows.iloc[start : start + count])
            start += count
        if sizes.train is None:
            chosen["train"].append(rows.iloc[start:])
        for part in given:
            own = samples[(samples["part"] == part) & (samples["class"] == cls)]
            chosen[part].append(_draw(own, sizes.cap(part), rng))
    return {name: pd.concat(frames) if frames else samples.iloc[:0] for name, frames in chosen.items()}


def drop_leaks(splits: dict[str, pd.DataFrame]) -> tuple[dict[str, pd.DataFrame], Leaks]:
    """The splits less the files already in an earlier split (by content hash), and what was found: every copy,
    dropped (in another split than its original) or kept (a second copy within one split)."""
    leaks, seen, kept = Leaks(), {}, {}
    for name in SPLITS:
        frame = splits[name]
        leaked = (frame["sha256"] != "") & frame["sha256"].isin(seen)
        if name in leaks.dropped:
            leaks.dropped[name] = int(leaked.sum())
        for path, digest in zip(frame["path"], frame["sha256"], strict=True):
            if digest in seen:
                leaks.rows.append({"split": name, "path": path, "same_as": seen[digest][1], "in": seen[digest][0]})
                leaks.within += seen[digest][0] == name
            elif digest:
                seen[digest] = (name, path)
        kept[name] = frame[~leaked]
    return kept, leaks


def _count(share: int | float, available: int) -> int:
    """Images of a class for a part: the count itself, or the fraction of the class's images (one at least)."""
    return share if isinstance(share, int) else max(1, round(available * share))


def _draw(rows: pd.DataFrame, count: int | None, rng: np.random.Generator) -> pd.DataFrame:
    """`rows` shuffled, the first `count` of them (all for None)."""
    return rows.iloc[rng.permutation(len(rows))[:count]]


@dataclass
class NearDuplicates:
    """Near-duplicate pairs found among the splits' images (`PAIR_COLUMNS` and `dropped`: the path left out of its
    split, empty when none was) and the counts: dropped from val and test, and pairs within one split."""

    pairs: pd.DataFrame
    dropped: dict[str, int] = field(default_factory=lambda: {"val": 0, "test": 0})
    within: int = 0


def drop_near_duplicates(
    splits: dict[str, pd.DataFrame], pairs: pd.DataFrame, drop: bool
) -> tuple[dict[str, pd.DataFrame], NearDuplicates]:
    """The splits less each image that is a near-duplicate of one in an earlier split (when `drop`), and every pair
    (`path_a`, `path_b`, `distance`) labelled with its splits, the earlier split's image first."""
    where = {path: name for name in SPLITS for path in splits[name]["path"]}
    order = {name: number for number, name in enumerate(SPLITS)}
    rows, gone = [], set()
    for a, b, distance in zip(pairs["path_a"], pairs["path_b"], pairs["distance"], strict=True):
        if order[where[a]] > order[where[b]]:
            a, b = b, a
        across = where[a] != where[b]
        dropped = b if drop and across and a not in gone else ""
        if dropped:
            gone.add(dropped)
        rows.append({"path_a": a, "path_b": b, "distance": int(distance), "splits": f"{where[a]}/{where[b]}",
                     "dropped": dropped})
    found = NearDuplicates(pd.DataFrame(rows, columns=[*PAIR_COLUMNS, "dropped"]))
    found.within = sum(_same_split(row["splits"]) for row in rows)
    kept = {name: frame[~frame["path"].isin(gone)] for name, frame in splits.items()}
    for name in found.dropped:
        found.dropped[name] = len(splits[name]) - len(kept[name])
    return kept, found


def _same_split(splits: str) -> bool:
    first, second = splits.split("/")
    return first == second
