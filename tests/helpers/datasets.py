"""Datasets taken through the data stages for a test, or laid out by hand."""

import pandas as pd

from pipeline.config.params import Params
from pipeline.core.paths import Paths
from pipeline.data.classes import Listing
from pipeline.data.raw import SAMPLE_COLUMNS, write_index
from pipeline.stages.download import download
from pipeline.stages.preprocess import preprocess
from pipeline.stages.split import split


def prepare(paths: Paths, params: Params, dataset: str) -> Paths:
    """Take `dataset` through download, split and preprocess under `paths`."""
    download(dataset, params.data[dataset], params.seed, paths)
    split(dataset, params.split[dataset], params.seed, paths)
    preprocess(dataset, params.preprocess[dataset], paths)
    return paths


def write_raw_index(paths: Paths, dataset: str, classes: tuple[str, ...]) -> None:
    """The raw `index.json` (and an empty `samples.csv`) of an images dataset whose archive a test writes itself."""
    paths.raw_dir(dataset).mkdir(parents=True, exist_ok=True)
    write_index(paths.raw_dir(dataset), "images", Listing("split_folders", [], classes, {}), pd.DataFrame(columns=SAMPLE_COLUMNS))
