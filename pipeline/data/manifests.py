"""Split manifests: one CSV per split (`path`, `label`, `class`), written by the split stage, read by preprocess;
beside them, the near-duplicate pairs the split found (`PAIR_COLUMNS`), read by the audit."""

import numpy as np
import pandas as pd

from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths

COLUMNS = ["path", "label", "class"]
PAIR_COLUMNS = ["path_a", "path_b", "distance", "splits"]


def read_manifest(paths: Paths, dataset: str, split_name: str) -> pd.DataFrame:
    """Read one split's manifest, with an error that says which stage to run when it is missing."""
    path = paths.manifest(dataset, split_name)
    if not path.is_file():
        raise PipelineError(f"{path}: manifest not found; run the split stage first: `dvc repro split@{dataset}`")
    return pd.read_csv(path, dtype={"path": str, "label": np.int64, "class": str})
