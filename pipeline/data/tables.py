"""Table datasets: samples as rows of numeric features, such as Fisher's Iris flowers.

Raw layout: one CSV (`data/raw/<dataset>/table.csv`) with the feature columns and a `class` column. Manifests
name a sample by its row number. Preprocess stores each split's features as float32 arrays (N, features), with
the training split's per-feature mean and std, which models standardise inputs with (as for image channels).
"""

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.config.datasets import TablePreprocess
from pipeline.core.atomic import atomic_path, write_json
from pipeline.core.errors import PipelineError
from pipeline.core.paths import SPLITS, Paths
from pipeline.data.manifests import read_manifest
from pipeline.data.specs import DatasetSpec

CLASS_COLUMN = "class"


def write_iris(target: Path) -> None:
    """Write Fisher's Iris data (150 rows, 4 features, 3 classes) from the copy scikit-learn ships: no network."""
    from sklearn.datasets import load_iris

    iris = load_iris()
    frame = pd.DataFrame(iris.data, columns=[name.removesuffix(" (cm)").replace(" ", "_") for name in iris.feature_names])
    frame[CLASS_COLUMN] = [str(iris.target_names[label]) for label in iris.target]
    write_table(target, frame)


def write_table(target: Path, frame: pd.DataFrame) -> None:
    """Write a raw table atomically, in a byte-stable form."""
    with atomic_path(target) as tmp:
        frame.to_csv(tmp, index=False, lineterminator="\n")


def read_table(path: Path, spec: DatasetSpec) -> pd.DataFrame:
    """A raw table, checked: a `class` column of the dataset's classes and numeric features."""
    if not path.is_file():
        raise PipelineError(f"{path}: not found; run the download stage first")
    frame = pd.read_csv(path)
    if CLASS_COLUMN not in frame.columns:
        raise PipelineError(f"{path}: no {CLASS_COLUMN!r} column")
    unknown = sorted(set(frame[CLASS_COLUMN]) - set(spec.classes))
    features = frame.drop(columns=CLASS_COLUMN)
    if unknown or not all(pd.api.types.is_numeric_dtype(kind) for kind in features.dtypes):
        raise PipelineError(f"{path}: expected numeric features and classes {', '.join(spec.classes)}")
    return frame


def list_rows(path: Path, spec: DatasetSpec) -> pd.DataFrame:
    """The samples of a raw table, one row each (`path`: the row number, `class`, `part`), as the split reads them."""
    frame = read_table(path, spec)
    return pd.DataFrame({"path": [str(row) for row in range(len(frame))], "class": frame[CLASS_COLUMN], "part": "train"})


def preprocess_table(spec: DatasetSpec, params: TablePreprocess, paths: Paths) -> dict:
    """Write each split's features and labels, the training split's per-feature mean and std, and meta.json."""
    frame = read_table(paths.raw_table(spec.name), spec)
    features = frame.drop(columns=CLASS_COLUMN)
    summary, stats = {}, {}
    with atomic_path(paths.processed_dir(spec.name)) as out:
        out.mkdir()
        for name in SPLITS:
            manifest = read_manifest(paths, spec.name, name)
            values = features.iloc[manifest["path"].astype(int)].to_numpy(np.float32)
            np.save(out / f"{name}_inputs.npy", values)
            np.save(out / f"{name}_labels.npy", manifest["label"].to_numpy(np.int64))
            summary[name] = {"kept": len(values), "skipped": 0}
            if name == "train":
                stats = {"mean": _rounded(values.mean(axis=0)), "std": _rounded(np.maximum(values.std(axis=0), 1e-6))}
        meta = {
            "kind": "table",
            "classes": list(spec.classes),
            "features": list(features.columns),
            "size": 1,
            **stats,
            "normalize": params.normalize,
        }
        write_json(out / "meta.json", meta)
    write_json(paths.preprocess_metrics(spec.name), summary)
    return summary


def _rounded(values: np.ndarray) -> list[float]:
    return values.astype(np.float64).round(6).tolist()
