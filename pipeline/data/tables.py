"""Table datasets: samples as rows of numeric features, such as Fisher's Iris flowers.

Raw layout: one CSV (`data/raw/<dataset>/table.csv`) with the feature columns and a `class` column, beside the
`samples.csv` and `index.json` every raw dataset has (`pipeline.data.raw`). Manifests name a sample by its row
number. Preprocess stores each split's features as float32 arrays (N, features), with
the training split's per-feature mean and std, which models standardise inputs with (as for image channels).
"""

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.config.datasets import TablePreprocess
from pipeline.core.atomic import atomic_path, write_json
from pipeline.core.errors import PipelineError
from pipeline.core.paths import RAW_TABLE, SPLITS, Paths
from pipeline.data.classes import Listing
from pipeline.data.manifests import read_manifest
from pipeline.data.raw import RawIndex, write_index

CLASS_COLUMN = "class"


def iris_frame() -> pd.DataFrame:
    """Fisher's Iris data (150 rows, 4 features, 3 classes) from the copy scikit-learn ships: no network."""
    from sklearn.datasets import load_iris

    iris = load_iris()
    frame = pd.DataFrame(iris.data, columns=[name.removesuffix(" (cm)").replace(" ", "_") for name in iris.feature_names])
    frame[CLASS_COLUMN] = [str(iris.target_names[label]) for label in iris.target]
    return frame


def write_table(folder: Path, frame: pd.DataFrame) -> RawIndex:
    """Write a raw table into `folder`: `table.csv` in a byte-stable form, and its samples and index (classes
    sorted, a sample per row, named by its row number)."""
    table = check_table(frame, str(folder / RAW_TABLE))
    table.to_csv(folder / RAW_TABLE, index=False, lineterminator="\n")
    classes = tuple(sorted(set(table[CLASS_COLUMN])))
    rows = pd.DataFrame({"path": [str(row) for row in range(len(table))], "class": table[CLASS_COLUMN]})
    return write_index(folder, "table", Listing("table", [], classes, {}), rows.assign(part="", sha256="", skip=""))


def check_table(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """A table with a `class` column and numeric features, or an error naming `where`."""
    if CLASS_COLUMN not in frame.columns:
        raise PipelineError(f"{where}: no {CLASS_COLUMN!r} column")
    features = frame.drop(columns=CLASS_COLUMN)
    if not all(pd.api.types.is_numeric_dtype(kind) for kind in features.dtypes):
        raise PipelineError(f"{where}: expected numeric features beside the {CLASS_COLUMN!r} column")
    return frame.assign(**{CLASS_COLUMN: frame[CLASS_COLUMN].astype(str)})


def read_table(paths: Paths, dataset: str) -> pd.DataFrame:
    """A dataset's raw table, checked."""
    path = paths.raw_table(dataset)
    if not path.is_file():
        raise PipelineError(f"{path}: not found; run the download stage first: `dvc repro download@{dataset}`")
    return check_table(pd.read_csv(path), str(path))


def preprocess_table(dataset: str, classes: tuple[str, ...], params: TablePreprocess, paths: Paths) -> dict:
    """Write each split's features and labels, the training split's per-feature mean and std, and meta.json."""
    frame = read_table(paths, dataset)
    features = frame.drop(columns=CLASS_COLUMN)
    summary, stats = {}, {}
    with atomic_path(paths.processed_dir(dataset)) as out:
        out.mkdir()
        for name in SPLITS:
            manifest = read_manifest(paths, dataset, name)
            values = features.iloc[manifest["path"].astype(int)].to_numpy(np.float32)
            np.save(out / f"{name}_inputs.npy", values)
            np.save(out / f"{name}_labels.npy", manifest["label"].to_numpy(np.int64))
            summary[name] = {"kept": len(values), "skipped": 0}
            if name == "train":
                stats = {"mean": _rounded(values.mean(axis=0)), "std": _rounded(np.maximum(values.std(axis=0), 1e-6))}
        meta = {
            "kind": "table",
            "classes": list(classes),
            "features": list(features.columns),
            "size": 1,
            **stats,
            "normalize": params.normalize,
        }
        write_json(out / "meta.json", meta)
    write_json(paths.preprocess_metrics(dataset), summary)
    return summary


def _rounded(values: np.ndarray) -> list[float]:
    return values.astype(np.float64).round(6).tolist()
