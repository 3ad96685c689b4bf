"""What the audit finds in a dataset's labels and images, from out-of-sample probabilities and features.

Label issues are cleanlab's `find_label_issues` (confident learning) over each group of images scored by models
that never saw them: train + val by their fold's model, the test split by every fold model; a flagged image's
`score` is one minus cleanlab's self-confidence label quality (1: surely mislabelled) and `suggested` the class
the models give it. Outliers are cleanlab's `OutOfDistribution` over the features: the mean distance to an image's
nearest neighbours, turned into a score in (0, 1]; an image is flagged when that distance (minus the log of the score)
lies beyond Tukey's fence, the upper quartile plus `fence` times the interquartile range (blank, off-topic, a
different kind of picture), and written with `score` one minus cleanlab's (higher: farther). Image-quality findings
(`pipeline.analysis.audit_quality`) have `QUALITY_COLUMNS`. Class balance is cleanlab Datalab's `class_imbalance`
rule: a class is far below the others when its share of the images is under `threshold` times an even share (1 / the
number of classes); the figure `rarest_share_of_even` is the rarest class's share over the even share (1: balanced).
"""

import numpy as np
import pandas as pd

LABEL_COLUMNS = ["path", "given", "suggested", "score", "split"]
OUTLIER_COLUMNS = ["path", "score", "split"]
QUALITY_COLUMNS = ["path", "issue", "score", "split"]


def label_issues(
    paths: list[str], labels: np.ndarray, probabilities: np.ndarray, classes: tuple[str, ...], split: list[str]
) -> pd.DataFrame:
    """The images cleanlab flags as mislabelled, most suspect first (`LABEL_COLUMNS`)."""
    if len(labels) == 0 or len(np.unique(labels)) < 2:
        return pd.DataFrame(columns=LABEL_COLUMNS)
    from cleanlab.filter import find_label_issues  # cleanlab takes seconds to import: only when there is work
    from cleanlab.rank import get_label_quality_scores
    flagged = find_label_issues(labels, probabilities, filter_by="prune_by_noise_rate")
    quality = get_label_quality_scores(labels, probabilities)
    rows = np.flatnonzero(flagged)
    table = pd.DataFrame({
        "path": [paths[row] for row in rows],
        "given": [classes[labels[row]] for row in rows],
        "suggested": [classes[probabilities[row].argmax()] for row in rows],
        "score": np.round(1 - quality[rows], 4),
        "split": [split[row] for row in rows],
    })
    return table.sort_values(["score", "path"], ascending=[False, True], kind="stable").reset_index(drop=True)


def outliers(paths: list[str], features: np.ndarray, fence: float, split: list[str]) -> pd.DataFrame:
    """The images far from every other (`OUTLIER_COLUMNS`), farthest first."""
    if len(features) < 3:
        return pd.DataFrame(columns=OUTLIER_COLUMNS)
    from cleanlab.outlier import OutOfDistribution
    neighbours = min(10, len(features) - 1)
    scores = OutOfDistribution(params={"k": neighbours}).fit_score(features=features.astype(np.float32))
    distance = -np.log(np.maximum(scores, 1e-12))
    lower, upper = np.percentile(distance, [25, 75])
    rows = np.flatnonzero(distance > upper + fence * (upper - lower))
    table = pd.DataFrame({
        "path": [paths[row] for row in rows], "score": np.round(1 - scores[rows], 4), "split": [split[row] for row in rows]
    })
    return table.sort_values(["score", "path"], ascending=[False, True], kind="stable").reset_index(drop=True)


def counts_by_split(table: pd.DataFrame, column: str = "split") -> dict[str, int]:
    """How many rows of a findings table fall in each split (or pair of splits), and the total."""
    counts = {str(key): int(value) for key, value in table[column].value_counts().sort_index().items()}
    return {**counts, "total": len(table)}


def class_balance(classes_by_split: dict[str, pd.Series], threshold: float) -> dict:
    """The images of each class in each split (and `all`), the largest class over the smallest, the rarest class's
    share over an even share, and the classes whose share is under `threshold` times an even share (`far_below`)."""
    per_split = {split: column.value_counts() for split, column in classes_by_split.items()}
    every = pd.concat(list(per_split.values()), axis=1).fillna(0).sum(axis=1).astype(int).sort_index()
    if every.empty:
        return {"counts": {}, "largest_to_smallest": None, "rarest_share_of_even": None, "far_below": []}
    even = every.sum() / len(every)
    counts = {split: {str(cls): int(found.get(cls, 0)) for cls in every.index} for split, found in per_split.items()}
    return {
        "counts": {**counts, "all": {str(cls): int(count) for cls, count in every.items()}},
        "largest_to_smallest": round(float(every.max() / max(1, every.min())), 2),
        "rarest_share_of_even": round(float(every.min() / even), 3),
        "far_below": [str(cls) for cls, count in every.items() if count < threshold * even],
    }
