"""Property-based tests (Hypothesis): generated hostile files (tests/hostile.py) through every way in: ingest
(download of an archive with odd entries, preprocess), `pipeline predict` and the server's upload path. Whatever the
bytes and names, the outcome is a counted skip, a clear error naming the file, or a 4xx: never a crash, a hang (each
example has a deadline), a write outside the data folder, or a good image lost beside the bad ones. Example counts
are set per test so that the whole file takes a few seconds."""

import re
import tempfile
import zipfile
from datetime import timedelta
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from test_cli import invoke
from test_download import archive_members, local
from test_preprocess import _only_train

from pipeline.config.datasets import PreprocessParams
from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths
from pipeline.data.archive import write_zip
from pipeline.data.layouts import clutter
from pipeline.data.sources.cifar_batches import CIFAR10_CLASSES
from pipeline.data.store import load_split
from pipeline.inference.predict import prepared
from pipeline.serving.uploads import FIELD
from pipeline.stages.download import download
from pipeline.stages.preprocess import preprocess
from tests.helpers.datasets import write_raw_index
from tests.helpers.refusals import files_outside
from tests.helpers.hostile import GOOD, OUTSIDE, entries, hostile_files, write_archive
from tests.helpers.model_files import image_meta, untrained_model
from tests.helpers.stand_in import StandInModel, stand_in_server

# Per example: far above what one takes (milliseconds; a tenth of a second for a stage or the CLI), even on a busy
# machine, and far below a hang.
SHORT, LONG = timedelta(seconds=5), timedelta(seconds=15)
named_files = st.lists(hostile_files(), min_size=1, max_size=4, unique_by=lambda file: file[0])


@settings(max_examples=200, deadline=SHORT)
@given(file=hostile_files())
def test_preparing_any_bytes_gives_the_models_input_or_a_reason(file):
    """`prepared` is what predict, the server and (with `fit_square`) preprocess run on every file."""
    name, data = file
    image, reason = prepared(data, name, StandInModel.preprocessing)
    event(reason.split(";")[0] or "prepared")
    if image is None:
        assert reason
    else:
        assert image.shape == (16, 16, 3) and image.dtype == np.uint8 and reason == ""


@pytest.fixture(scope="module")
def server():
    """A stand-in server, and the probabilities of each good image sent alone."""
    with stand_in_server() as serving, httpx.Client(base_url=serving.url, timeout=10) as client:
        alone = {name: _predicted(client, [(name, data)]).json()["predictions"][0]["top"] for name, data in GOOD.items()}
        yield client, alone
        assert client.get("/health").status_code == 200


def _predicted(client: httpx.Client, files: list[tuple[str, bytes]]) -> httpx.Response:
    return client.post("/predict", files=[(FIELD, file) for file in files])


@settings(max_examples=50, deadline=SHORT, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(odd=named_files, good=st.sampled_from(sorted(GOOD)))
def test_an_upload_is_scored_whole_or_refused_naming_the_bad_files_never_the_good_one(server, odd, good):
    """(The names are compared by their `h-` head: httpx sends a control character of a name %-encoded.)"""
    client, alone = server
    response = _predicted(client, [(good, GOOD[good]), *odd])
    event(f"status {response.status_code}")
    if response.status_code == 200:
        predictions = response.json()["predictions"]
        assert len(predictions) == 1 + len(odd) and all(p["filename"].startswith("h-") for p in predictions[1:])
        assert predictions[0]["filename"] == good and predictions[0]["top"] == alone[good]
    else:
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert detail.startswith("not a usable image: h-") and good not in detail
        assert detail.endswith("(nothing was scored; send the others alone)")


@settings(max_examples=60, deadline=SHORT, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 400), flips=st.lists(st.integers(0, 400 * 8 - 1), max_size=6), extra=st.binary(max_size=64))
def test_a_mangled_multipart_body_is_answered_with_a_4xx_or_its_predictions(server, cut, flips, extra):
    client, _ = server
    request = client.build_request("POST", "/predict", files=[(FIELD, ("good-1.jpg", GOOD["good-1.jpg"]))])
    body = bytearray(request.read())
    for bit in flips:
        body[bit // 8] ^= 1 << bit % 8
    mangled = bytes(body[: len(body) - cut]) + extra
    response = client.post("/predict", content=mangled, headers={"content-type": request.headers["content-type"]})
    event(f"status {response.status_code}")
    assert response.status_code in (200, 400, 413, 415, 422), response.text
    assert response.json()["detail" if response.status_code != 200 else "predictions"]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """An untrained model for 24x24 gray images of two classes."""
    return untrained_model(tmp_path_factory.mktemp("model") / "model.pt", image_meta(["cat", "dog"]))


@settings(max_examples=20, deadline=LONG, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(odd=named_files, archived=entries())
def test_predict_predicts_every_good_image_and_accounts_for_every_other_file(model_file, odd, archived):
    with tempfile.TemporaryDirectory() as scratch:
        folder, out = Path(scratch) / "photos", Path(scratch) / "out.csv"
        folder.mkdir()
        for name, data in [*GOOD.items(), *odd]:
            (folder / name).write_bytes(data)
        archive = write_archive(Path(scratch) / "more.zip", {}, archived)
        result = invoke("predict", str(model_file), str(folder), str(archive), "--out", str(out), "--device", "cpu")
        event("refused" if result.exit_code else "predicted")
        if result.exit_code != 0:  # only the archive can be refused as a whole: an entry pointing outside it
            assert result.exit_code == 1 and result.stderr.startswith(f"error: PATH: {archive} holds the entry ")
            return
        predicted = pd.read_csv(out, keep_default_na=False)["path"].tolist()
        with zipfile.ZipFile(archive) as opened:
            archived_files = {info.filename for info in opened.infolist() if not info.is_dir()}
    assert {str(folder / name) for name in GOOD} <= set(predicted)
    accounted = len(predicted) + _count(result.stdout, "skipped") + _count(result.stdout, "ignored")
    assert accounted == len(GOOD) + len(odd) + len(archived_files)


def _count(output: str, what: str) -> int:
    """N in predict's last "WHAT N files" line ("skipped", "ignored"); 0 without one."""
    found = re.findall(rf"^{what} (\d+) file", output, re.MULTILINE)
    return int(found[-1]) if found else 0


@settings(max_examples=20, deadline=LONG)
@given(odd=entries(), outside=st.one_of(st.none(), st.sampled_from(OUTSIDE)), kind=st.sampled_from(["zip", "tar.gz"]))
def test_download_ingests_an_archive_of_odd_entries_or_refuses_it_by_name_writing_only_under_data(odd, outside, kind):
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        (root / "user").mkdir()
        good = {f"train/{name}": data for name, data in _catsdogs().items()}
        odd = [entry for entry in odd if entry[0] not in good] + ([(outside, b"0", b"", "")] if outside else [])
        source = write_archive(root / "user" / f"photos.{kind}", good, odd)
        paths = Paths(root / "project")
        paths.root.mkdir()
        before = files_outside(root, paths.root / "data")
        try:
            download("catsdogs", local(source), 0, paths)
        except PipelineError as error:
            event(f"refused: {str(error).split(', ')[-1][:40]}")
            assert str(source) in str(error)
            assert not paths.raw_dir("catsdogs").exists()
        else:
            event("ingested")
            assert outside is None
            kept = archive_members(paths.raw_archive("catsdogs"))
            assert {name: kept.get(name) for name in good} == good
        assert files_outside(root, paths.root / "data") == before


def _catsdogs() -> dict[str, bytes]:
    """The good images as the Kaggle layout names them."""
    return {"cat.1.jpg": GOOD["good-1.jpg"], "dog.1.png": GOOD["good-2.png"]}


@settings(max_examples=10, deadline=LONG)
@given(odd=named_files)
def test_preprocess_keeps_the_good_images_and_skips_each_bad_one_with_its_reason(odd):
    """(Of the names a dataset's listing takes: the others never reach a manifest.)"""
    odd = [(name, data) for name, data in odd if not clutter(name)]
    with tempfile.TemporaryDirectory() as scratch:
        paths = Paths(Path(scratch))
        members = {f"train/cat/{name}": data for name, data in [*GOOD.items(), *odd]}
        write_zip(paths.raw_archive("cifar10"), members.items())
        write_raw_index(paths, "cifar10", CIFAR10_CLASSES)
        _only_train(paths, "cifar10", list(members))
        summary = preprocess("cifar10", PreprocessParams(image_size=16, color="rgb"), paths)
        event(f"{summary['train']['skipped']} skipped")
        skipped = pd.read_csv(paths.processed_dir("cifar10") / "skipped.csv", keep_default_na=False)
        inputs = np.array(load_split(paths, "cifar10", "train").inputs)
    assert summary["train"] == {"kept": len(members) - len(skipped), "skipped": len(skipped)}
    assert all(skipped["reason"]) and not set(skipped["path"]) & {f"train/cat/{name}" for name in GOOD}
    for row, (name, data) in enumerate(GOOD.items()):
        assert (inputs[row] == prepared(data, name, StandInModel.preprocessing)[0]).all()
