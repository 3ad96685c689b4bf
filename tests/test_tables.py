"""Table datasets (Iris): download from scikit-learn's copy, split by row, store features, train and evaluate."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.config.datasets import IrisData, SplitParams, TablePreprocess
from pipeline.config.params import parse_params
from pipeline.core.errors import PipelineError
from pipeline.core.runtime import Normalization, to_tensor
from pipeline.data.store import load_meta, load_split
from pipeline.data.tables import read_table, write_table
from pipeline.stages.download import download
from pipeline.stages.evaluate import evaluate
from pipeline.stages.preprocess import preprocess
from pipeline.stages.split import split
from pipeline.stages.train import train

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
IRIS_PARAMS = {
    "seed": 3,
    "data": {"iris": {"source": "sklearn"}},
    "split": {"iris": {"train": 30, "val": 10, "test": 10}},
    "preprocess": {"iris": {"normalize": True}},
    "train": {"device": "cpu"},
    "models": {"iris_mlp": {"dataset": "iris", "arch": "mlp", "hidden": [8], "epochs": 3, "batch_size": 5}},
}


@pytest.fixture
def iris(paths):
    """Iris taken through download, split and preprocess."""
    params = parse_params(IRIS_PARAMS)
    assert download("iris", params.data["iris"], params.seed, paths).samples == 150
    split("iris", params.split["iris"], params.seed, paths)
    preprocess("iris", params.preprocess["iris"], paths)
    return paths


def test_download_writes_the_150_flowers_with_named_features(paths):
    download("iris", IrisData(), 0, paths)
    frame = pd.read_csv(paths.raw_table("iris"))
    assert list(frame.columns) == [*FEATURES, "class"]
    assert frame["class"].value_counts().to_dict() == {"setosa": 50, "versicolor": 50, "virginica": 50}
    assert frame.iloc[0].tolist() == [5.1, 3.5, 1.4, 0.2, "setosa"]


def test_split_draws_balanced_disjoint_rows(iris):
    manifests = {name: pd.read_csv(iris.manifest("iris", name)) for name in ("train", "val", "test")}
    assert {name: len(frame) for name, frame in manifests.items()} == {"train": 90, "val": 30, "test": 30}
    assert all(frame["class"].value_counts().nunique() == 1 for frame in manifests.values())
    rows = [set(frame["path"]) for frame in manifests.values()]
    assert not (rows[0] & rows[1] or rows[0] & rows[2] or rows[1] & rows[2])


def test_preprocess_stores_float_features_and_the_training_stats(iris):
    train_split = load_split(iris, "iris", "train")
    assert train_split.inputs.shape == (90, 4) and train_split.inputs.dtype == np.float32
    meta = load_meta(iris, "iris")
    assert (meta.kind, meta.features, meta.size) == ("table", FEATURES, 1)
    assert meta.mean == pytest.approx(train_split.inputs.mean(axis=0), abs=1e-5)
    raw = pd.read_csv(iris.raw_table("iris"))
    manifest = pd.read_csv(iris.manifest("iris", "train"))
    assert np.allclose(train_split.inputs, raw.iloc[manifest["path"]][FEATURES].to_numpy(np.float32))
    assert train_split.labels.tolist() == manifest["label"].tolist()


def test_preprocess_is_byte_identical_on_a_rerun(iris):
    before = {path.name: path.read_bytes() for path in iris.processed_dir("iris").iterdir()}
    preprocess("iris", TablePreprocess(), iris)
    assert {path.name: path.read_bytes() for path in iris.processed_dir("iris").iterdir()} == before


def test_table_rows_are_standardised_feature_by_feature_without_touching_the_array():
    rows = np.array([[1.0, 10.0], [3.0, 30.0]], np.float32)
    tensor = to_tensor(rows, Normalization(mean=(2.0, 20.0), std=(1.0, 10.0)))
    assert torch.equal(tensor, torch.tensor([[-1.0, -1.0], [1.0, 1.0]]))
    assert rows[0, 0] == 1.0


def test_the_iris_mlp_trains_and_evaluates_with_a_feature_scatter(iris):
    params = parse_params(IRIS_PARAMS)
    last = train("iris_mlp", params, iris)
    assert last["epoch"] == 3
    assert not (iris.train_dir("iris_mlp") / "plots" / "images" / "augmentation.png").exists()
    metrics = evaluate("iris_mlp", iris, "cpu")
    assert metrics["samples"] == 30
    assert iris.misclassified("iris_mlp").read_bytes().startswith(b"\x89PNG")
    assert json.loads(iris.test_metrics("iris_mlp").read_text())["accuracy"] == metrics["accuracy"]


def test_a_table_without_a_class_column_is_an_error_naming_the_file(tmp_path):
    with pytest.raises(PipelineError, match=r"table\.csv: no 'class' column"):
        write_table(tmp_path, pd.DataFrame({"a": [1.0], "b": [2.0]}))


def test_a_raw_table_with_text_features_is_an_error_naming_the_file(paths):
    paths.raw_dir("iris").mkdir(parents=True)
    pd.DataFrame({"a": ["x"], "class": ["rose"]}).to_csv(paths.raw_table("iris"), index=False)
    with pytest.raises(PipelineError, match=rf"{paths.raw_table('iris')}: expected numeric features"):
        read_table(paths, "iris")


def test_too_few_rows_for_the_split_names_the_counts(iris):
    with pytest.raises(PipelineError, match=r"split\.iris: class 'setosa' has 50 images to split, but .* = 60"):
        split("iris", SplitParams(train=40, val=10, test=10), 0, iris)
