"""`pipeline predict`: the model's own preprocessing, exactly evaluate's probabilities, unusable files listed and
skipped, folders, archives, top-k, scoring against labels, the CSV."""

import io
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from test_cli import assert_clean_error, invoke, ok

from pipeline.config.params import parse_params
from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths
from pipeline.core.runtime import Normalization, place
from pipeline.data.manifests import read_manifest
from pipeline.data.store import load_meta, load_split
from pipeline.inference.backend import Backend
from pipeline.inference.inputs import Inputs
from pipeline.inference.labels import read_labels
from pipeline.inference.predict import (
    Predictions,
    open_backend,
    predict_items,
    prepared,
    score,
)
from pipeline.inference.torch_backend import TorchBackend
from pipeline.models.file import load_model
from pipeline.analysis.measure import measure
from tests.helpers.datasets import prepare
from tests.helpers.model_files import image_meta, rewritten, untrained_model
from tests.helpers.params import tiny_raw

MODEL = "catsdogs_cnn"
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Paths:
    """The tiny catsdogs sample preprocessed gray, 32 px, centre-cropped and normalised, a model saved for it, and
    its params.yaml at the root."""
    raw = tiny_raw(**{"preprocess.catsdogs.resize": "crop", "preprocess.catsdogs.normalize": True})
    paths = prepare(Paths(tmp_path_factory.mktemp("project")), parse_params(raw), "catsdogs")
    untrained_model(paths.model_file(MODEL), load_meta(paths, "catsdogs"), seed=3)
    (paths.root / "params.yaml").write_text(yaml.safe_dump(raw))
    return paths


@pytest.fixture(scope="module")
def test_images(project, tmp_path_factory) -> Path:
    """The test split's raw images, as a user's folder of class folders (`<class>/<file>`)."""
    folder = tmp_path_factory.mktemp("images")
    with zipfile.ZipFile(project.raw_archive("catsdogs")) as archive:
        for member, cls in zip(*_test_split(project), strict=True):
            (folder / cls).mkdir(exist_ok=True)
            (folder / cls / Path(member).name).write_bytes(archive.read(member))
    return folder


@pytest.fixture
def in_project(project, monkeypatch) -> Paths:
    monkeypatch.chdir(project.root)
    return project


def _test_split(paths: Paths) -> tuple[list[str], list[str]]:
    manifest = read_manifest(paths, "catsdogs", "test")
    return list(manifest["path"]), list(manifest["class"])


def _predicted(model_file: Path, *paths: Path, backend: Backend | None = None) -> Predictions:
    """The predictions for `paths`, by the torch backend for `model_file` unless another backend is given."""
    with Inputs(list(paths)) as inputs:
        scorer = backend or TorchBackend(model_file, "cpu")
        return predict_items(scorer, inputs, batch_size=4, total=len(inputs))


def test_predictions_are_evaluates_on_the_same_images(project, test_images):
    backend = TorchBackend(project.model_file(MODEL), "cpu")
    model, saved = load_model(project.model_file(MODEL))
    test = load_split(project, "catsdogs", "test")
    scored = measure(place(model, CPU), test, 256, CPU, Normalization.from_stats(saved.normalization))
    result = _predicted(project.model_file(MODEL), test_images)
    by_file = {Path(p.name).name: p.probabilities for p in result.predicted}
    members, classes = _test_split(project)
    assert len(by_file) == len(members) == 6 and result.skipped == []
    for member, cls, pixels, expected in zip(members, classes, test.inputs, scored.probabilities, strict=True):
        image, reason = prepared((test_images / cls / Path(member).name).read_bytes(), member, backend.preprocessing)
        assert reason == "" and np.array_equal(image, pixels)  # the very pixels preprocess stored
        np.testing.assert_allclose(by_file[Path(member).name], expected, rtol=0, atol=1e-6)


def test_the_preprocessing_comes_from_the_model_file_not_params(in_project, test_images, tmp_path):
    before = ok("predict", MODEL, str(test_images)).stdout
    raw = yaml.safe_load(Path("params.yaml").read_text())
    raw["preprocess"]["catsdogs"].update(image_size=48, color="rgb", resize="pad", normalize=False)
    (tmp_path / "changed.yaml").write_text(yaml.safe_dump(raw))
    assert ok("predict", MODEL, str(test_images), "--params", str(tmp_path / "changed.yaml")).stdout == before
    assert TorchBackend(in_project.model_file(MODEL), "cpu").preprocessing.size == 32


def test_unusable_files_are_listed_with_their_reason_and_the_others_predicted(project, test_images, tmp_path):
    jpeg = next(test_images.rglob("*.jpg")).read_bytes()
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (tmp_path / "corrupt.jpg").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "good.jpg").write_bytes(jpeg)
    files = [tmp_path / name for name in ("empty.jpg", "truncated.jpg", "corrupt.jpg", "good.jpg")]
    result = _predicted(project.model_file(MODEL), *files)
    assert [p.name for p in result.predicted] == [str(tmp_path / "good.jpg")]
    assert result.skipped == [
        (str(files[0]), "empty file"),
        (str(files[1]), "truncated JPEG (no end-of-image marker); download it again"),
        (str(files[2]), "not a decodable image"),
    ]


def test_folders_are_searched_at_any_depth_and_archives_read(project, test_images, tmp_path):
    nested = tmp_path / "a" / "b" / "c"
    nested.mkdir(parents=True)
    jpeg = next(test_images.rglob("*.jpg")).read_bytes()
    (nested / "deep.jpg").write_bytes(jpeg)
    (nested / "notes.txt").write_text("not an image")
    (nested / ".hidden.jpg").write_bytes(jpeg)
    with zipfile.ZipFile(tmp_path / "more.zip", "w") as archive:
        archive.writestr("x/one.jpg", jpeg)
        archive.writestr("__MACOSX/x/._one.jpg", b"resource fork")
    with tarfile.open(tmp_path / "more.tar.gz", "w:gz") as archive:
        info = tarfile.TarInfo("two.jpg")
        info.size = len(jpeg)
        archive.addfile(info, io.BytesIO(jpeg))
    with Inputs([tmp_path / "a", tmp_path / "more.zip", tmp_path / "more.tar.gz"]) as inputs:
        assert (len(inputs), inputs.ignored) == (3, 3)
        result = predict_items(TorchBackend(project.model_file(MODEL), "cpu"), inputs)
    names = [p.name for p in result.predicted]
    assert names == [f"{tmp_path}/a/b/c/deep.jpg", f"{tmp_path}/more.zip/x/one.jpg", f"{tmp_path}/more.tar.gz/two.jpg"]
    rows = [p.probabilities for p in result.predicted]
    assert all(np.array_equal(row, rows[0]) for row in rows)  # the same image, whatever holds it


def test_a_path_that_does_not_exist_is_an_error_naming_it(tmp_path):
    with pytest.raises(PipelineError, match=f"PATH: {tmp_path / 'nowhere'} does not exist"):
        Inputs([tmp_path / "nowhere"])


@pytest.fixture
def three_classes(tmp_path, test_images) -> tuple[Path, Path]:
    """A 3-class RGB model, and a folder of class folders (ant, bee, cow) of 2 images each."""
    model = untrained_model(tmp_path / "bugs.pt", image_meta(["ant", "bee", "cow"], color="rgb"), "bugs", seed=1)
    images = sorted(test_images.rglob("*.jpg"))
    for index, cls in enumerate(["ant", "ant", "bee", "bee", "cow", "cow"]):
        (tmp_path / "labelled" / cls).mkdir(parents=True, exist_ok=True)
        (tmp_path / "labelled" / cls / images[index].name).write_bytes(images[index].read_bytes())
    return model, tmp_path / "labelled"


def test_top_k_and_the_csv(three_classes, tmp_path):
    model, images = three_classes
    result = ok("predict", str(model), str(images), "--top", "3", "--out", str(tmp_path / "preds.csv"))
    table = pd.read_csv(tmp_path / "preds.csv")
    assert list(table.columns) == ["path", "class", "probability", "class_2", "probability_2", "class_3",
                                   "probability_3"]
    assert len(table) == 6 and table["path"].iloc[0] == f"{images}/ant/{min((images / 'ant').iterdir()).name}"
    for (_, row), prediction in zip(table.iterrows(), _predicted(model, images).predicted, strict=True):
        order = np.argsort(-prediction.probabilities, kind="stable")
        assert [row[column] for column in ("class", "class_2", "class_3")] == [["ant", "bee", "cow"][i] for i in order]
        probabilities = [row[column] for column in ("probability", "probability_2", "probability_3")]
        assert probabilities == pytest.approx(prediction.probabilities[order], abs=1e-6)
    assert result.stdout.splitlines()[0].split() == list(table.columns)
    assert "predicted 6 images" in result.stdout
    assert f"wrote {tmp_path / 'preds.csv'}" in result.stdout


def _scored(model: Path, images: Path, labels: Path):
    result = _predicted(model, images)
    expected = {"ant": 0, "bee": 1, "cow": 2}
    actual = [expected[Path(p.name).parent.name] for p in result.predicted]
    predicted = [int(np.argmax(p.probabilities)) for p in result.predicted]
    confusion = np.zeros((3, 3), np.int64)
    for a, p in zip(actual, predicted, strict=True):
        confusion[a, p] += 1
    found = score(result, read_labels(labels, ["ant", "bee", "cow"]))
    assert found.accuracy == pytest.approx(np.mean(np.array(actual) == predicted))
    assert np.array_equal(found.confusion, confusion) and (found.labelled, found.unlabelled) == (6, 0)
    return found


def test_labels_from_class_folders_give_accuracy_and_confusion_counts(three_classes):
    model, images = three_classes
    found = _scored(model, images, images)
    result = ok("predict", str(model), str(images), "--labels", str(images))
    assert f"accuracy {found.accuracy:.3f} on 6 labelled images" in result.stdout
    counts = result.stdout.split("columns: predicted class):\n")[1].splitlines()
    assert counts[0].split() == ["predicted", "ant", "bee", "cow"]
    assert [line.split()[1:] for line in counts[2:5]] == [[str(n) for n in row] for row in found.confusion]


def test_labels_from_a_csv_beside_the_images(three_classes, tmp_path):
    model, images = three_classes
    rows = [f"{path.relative_to(images).as_posix()},{path.parent.name}" for path in sorted(images.rglob("*.jpg"))]
    (images / "labels.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    _scored(model, images, images / "labels.csv")
    csv = tmp_path / "preds.csv"
    ok("predict", str(model), str(images), "--labels", str(images / "labels.csv"), "--out", str(csv))
    assert list(pd.read_csv(csv)["label"]) == [Path(row.split(",")[0]).parent.name for row in rows]


def test_labels_that_are_not_the_models_classes_are_an_error(three_classes):
    model, images = three_classes
    (images / "ant").rename(images / "ants")
    result = invoke("predict", str(model), str(images), "--labels", str(images))
    assert_clean_error(result, f"--labels: {images}: 'ants' is not a class of the model (its classes: ant, bee, cow)")


def test_a_model_file_of_an_older_pipeline_is_refused_by_predict(project, test_images, tmp_path):
    model = untrained_model(tmp_path / "old.pt", load_meta(project, "catsdogs"))
    rewritten(model, lambda saved: saved.pop("format"))
    assert_clean_error(invoke("predict", str(model), str(test_images)), f"{model}: written by an older version")


def test_a_table_model_is_refused(project, tmp_path, test_images):
    model = untrained_model(tmp_path / "iris_mlp.pt", load_meta(project, "catsdogs"), "iris_mlp")
    rewritten(model, lambda saved: saved.update(preprocessing=None, dataset="iris"))
    assert_clean_error(invoke("predict", str(model), str(test_images)), "trained on a table of features (iris)")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["nonesuch", "."], "MODEL: 'nonesuch' is neither a model file nor a model under `models`"),
        ([MODEL, ".", "--top", "3"], "--top 3: the model has 2 classes (cat, dog); give 1 to 2"),
        ([MODEL, ".", "--backend", "tf"], "--backend: 'tf' is not one of torch, onnx"),
        ([MODEL, ".", "--backend", "onnx"], "models/catsdogs_cnn.onnx not found; export the model to ONNX first"),
        ([MODEL, "nowhere"], "PATH: nowhere does not exist"),
    ],
)
def test_a_usage_error_is_one_line_naming_the_argument(in_project, args, fragment):
    assert_clean_error(invoke("predict", *args), fragment)


def test_the_onnx_backend_missing_from_this_version_is_a_clean_error(tmp_path, monkeypatch):
    (tmp_path / "model.onnx").write_bytes(b"exported")
    monkeypatch.setitem(sys.modules, "pipeline.inference.onnx_backend", None)
    with pytest.raises(PipelineError, match="--backend onnx: this version of the pipeline has no ONNX backend"):
        open_backend("onnx", tmp_path / "model.pt")


@pytest.mark.slow
def test_the_onnx_backend_predicts_as_the_torch_one(project, test_images):
    onnx_backend = pytest.importorskip("pipeline.inference.onnx_backend")
    export = pytest.importorskip("pipeline.stages.export")
    export.export(MODEL, project)
    onnx_file = project.model_file(MODEL).with_suffix(".onnx")
    onnx = _predicted(project.model_file(MODEL), test_images, backend=onnx_backend.OnnxBackend(onnx_file))
    for ours, theirs in zip(onnx.predicted, _predicted(project.model_file(MODEL), test_images).predicted, strict=True):
        np.testing.assert_allclose(ours.probabilities, theirs.probabilities, rtol=0, atol=1e-5)


def test_explain_writes_a_grad_cam_figure_per_image_and_needs_the_torch_backend(in_project, test_images, tmp_path):
    result = ok("predict", MODEL, str(test_images / "cat"), "--explain", str(tmp_path / "cams"))
    figures = sorted((tmp_path / "cams").glob("*.gradcam.png"))
    assert len(figures) == len(list((test_images / "cat").iterdir())) and f"wrote {len(figures)} Grad-CAM" in result.stdout
    assert all(path.name.startswith(f"{str(test_images).strip('/').replace('/', '_')}_cat_") for path in figures)
    refused = invoke("predict", MODEL, str(test_images), "--backend", "onnx", "--explain", str(tmp_path / "x"))
    assert refused.exit_code != 0
