"""`pipeline serve`: the real server, started as `python -m pipeline serve` on a free port of 127.0.0.1, talked to
over HTTP. Its answers are predict's; every kind of bad input gets a 4xx with a message and the server goes on
serving; the form page; the model's facts; 8 concurrent clients with nothing lost."""

import http.server
import json
import threading
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from test_cli import assert_clean_error, invoke
from test_preprocess import _bomb

from pipeline.config.archs import CatsDogsCnnArgs
from pipeline.config.params import parse_params
from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths
from pipeline.data.manifests import read_manifest
from pipeline.data.store import load_meta
from pipeline.inference.inputs import Inputs
from pipeline.inference.predict import predict_items
from pipeline.inference.torch_backend import TorchBackend
from pipeline.models.calibration import save_calibration
from pipeline.serving import launch
from pipeline.serving.launch import running_server
from pipeline.serving.uploads import FIELD
from tests.helpers.datasets import prepare
from tests.helpers.model_files import calibration_of, untrained_model
from tests.helpers.params import tiny_raw

MODEL = "catsdogs_cnn"
MAX_BYTES = 200_000  # above the bomb's 110 kB, so that it is refused for its pixels, not its bytes
TEST_FIGURES = {"accuracy": 0.5, "loss": 0.69, "ece": 0.1, "epoch": 1, "kept": "best", "samples": 6}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Paths:
    """The tiny catsdogs sample preprocessed (gray, 32 px, cropped, normalised), a model for it with a calibration
    (temperature 0.5, so that every answer checked against predict's is a calibrated one), its test figures and
    params.yaml: a repository's root, as `pipeline serve MODEL` expects to be run from."""
    raw = tiny_raw(**{"preprocess.catsdogs.resize": "crop", "preprocess.catsdogs.normalize": True})
    paths = prepare(Paths(tmp_path_factory.mktemp("project")), parse_params(raw), "catsdogs")
    model_file = paths.model_file(MODEL)
    untrained_model(model_file, load_meta(paths, "catsdogs"), seed=3)
    save_calibration(model_file, calibration_of(0.5, model_file))
    (paths.root / "params.yaml").write_text(yaml.safe_dump(raw))
    paths.test_metrics(MODEL).parent.mkdir(parents=True)
    paths.test_metrics(MODEL).write_text(json.dumps(TEST_FIGURES))
    return paths


@pytest.fixture(scope="module")
def images(project, tmp_path_factory) -> dict[str, bytes]:
    """The raw images of the test split, by file name."""
    names = read_manifest(project, "catsdogs", "test")["path"]
    with zipfile.ZipFile(project.raw_archive("catsdogs")) as archive:
        return {Path(member).name: archive.read(member) for member in names}


@pytest.fixture(scope="module")
def expected(project, images, tmp_path_factory) -> dict[str, np.ndarray]:
    """Each image's probabilities as `pipeline predict` computes them (its `predict_items`), by file name."""
    folder = tmp_path_factory.mktemp("photos")
    for name, data in images.items():
        (folder / name).write_bytes(data)
    with Inputs([folder]) as inputs:
        predicted = predict_items(TorchBackend(project.model_file(MODEL), "cpu"), inputs).predicted
    return {Path(p.name).name: p.probabilities for p in predicted}


@pytest.fixture(scope="module")
def server(project) -> str:
    """The base URL of `pipeline serve catsdogs_cnn` run in the project; terminated after the module's tests."""
    with running_server(MODEL, "--max-bytes", str(MAX_BYTES), "--device", "cpu", cwd=project.root) as url:
        yield url


def _post(client: httpx.Client, url: str, *files: tuple[str, bytes], field: str = FIELD, **kwargs) -> httpx.Response:
    return client.post(f"{url}/predict", files=[(field, (name, data)) for name, data in files], **kwargs)


def _check(prediction: dict, expected: dict[str, np.ndarray], classes=("cat", "dog")) -> None:
    """One image's answer is predict's probabilities (within 1e-6), most probable first."""
    probabilities = expected[prediction["filename"]]
    order = np.argsort(-probabilities, kind="stable")
    assert [entry["class"] for entry in prediction["top"]] == [classes[i] for i in order]
    assert prediction["class"] == classes[order[0]]
    got = [entry["probability"] for entry in prediction["top"]]
    np.testing.assert_allclose(got, probabilities[order], rtol=0, atol=1e-6)


def test_answers_are_predicts_probabilities_one_image_or_several(server, images, expected):
    with httpx.Client() as client:
        for name, data in images.items():
            response = _post(client, server, (name, data))
            assert response.status_code == 200
            body = response.json()
            assert body["model"] == MODEL and len(body["predictions"]) == 1
            _check(body["predictions"][0], expected)
        together = _post(client, server, *images.items()).json()["predictions"]
    assert [p["filename"] for p in together] == list(images)
    for prediction in together:
        _check(prediction, expected)


def test_top_k_per_request(server, images):
    name, data = next(iter(images.items()))
    with httpx.Client() as client:
        assert len(_post(client, server, (name, data), params={"top": "1"}).json()["predictions"][0]["top"]) == 1
        refused = _post(client, server, (name, data), params={"top": "3"})
    assert refused.status_code == 422 and refused.json()["detail"] == "top=3: give a number of classes from 1 to 2"


def _chunked(body: bytes):
    for start in range(0, len(body), 16_384):
        yield body[start : start + 16_384]


def _multipart(name: str, data: bytes, boundary: str = "b0undary") -> tuple[bytes, dict[str, str]]:
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="{FIELD}"; filename="{name}"\r\n\r\n'.encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), {"content-type": f"multipart/form-data; boundary={boundary}"}


def _oversized(jpeg: bytes) -> tuple[bytes, dict[str, str]]:
    return _multipart("big.jpg", jpeg * (MAX_BYTES // len(jpeg) + 1))


def _body(content: bytes, headers: dict[str, str]) -> dict:
    return {"content": content, "headers": headers}


def _declared(jpeg: bytes) -> dict:
    return _body(*_oversized(jpeg))


def _streamed(jpeg: bytes) -> dict:
    body, headers = _oversized(jpeg)
    return _body(_chunked(body), headers)  # chunked: no Content-Length


# Each kind of bad request: how to send it (from a good JPEG), the status and a fragment of the message.
BAD = {
    "not an image": (lambda jpeg: {"files": {FIELD: ("x.jpg", bytes(range(256)) * 4)}}, 422,
                     "not a usable image: x.jpg: not a decodable image"),
    "truncated": (lambda jpeg: {"files": {FIELD: ("cut.jpg", jpeg[: len(jpeg) // 2])}}, 422,
                  "cut.jpg: truncated JPEG (no end-of-image marker)"),
    "misnamed": (lambda jpeg: {"files": {FIELD: ("x.png", jpeg)}}, 422, "x.png: JPEG data named .png"),
    "empty": (lambda jpeg: {"files": {FIELD: ("e.jpg", b"")}}, 422, "e.jpg: empty file"),
    "bomb": (lambda jpeg: {"files": {FIELD: ("huge.png", _bomb())}}, 422,
             "huge.png: more than 50,000,000 pixels; not decoded"),
    "one bad of two": (lambda jpeg: {"files": [(FIELD, ("ok.jpg", jpeg)), (FIELD, ("e.jpg", b""))]}, 422,
                       "e.jpg: empty file (nothing was scored; send the others alone)"),
    "over the limit, declared": (_declared, 413, "request body of "),
    "over the limit, streamed": (_streamed, 413, f"request body over the limit of {MAX_BYTES:,} bytes (--max-bytes)"),
    "wrong field": (lambda jpeg: {"files": {"image": ("x.jpg", jpeg)}}, 422, "no field named 'file' (got 'image')"),
    "text, not a file": (lambda jpeg: {"files": {FIELD: (None, b"x.jpg")}}, 422, "field 'file' holds text, not a file"),
    # what a browser's form sends when no file was chosen: a file part with an empty name and no bytes
    "no file chosen": (lambda jpeg: _body(*_multipart("", b"")), 422, "no file: field 'file' is empty"),
    "no body": (lambda jpeg: {}, 422, "no file: the request has no body"),
    "no field": (lambda jpeg: {"files": {"note": (None, b"hi")}}, 422, "no field named 'file' (got 'note')"),
    "not multipart": (lambda jpeg: {"json": {FIELD: "x.jpg"}}, 415,
                      "the body is application/json, not multipart/form-data"),
    "malformed": (lambda jpeg: _body(b"garbage", {"content-type": "multipart/form-data"}), 400,
                  "not a well-formed multipart/form-data body"),
}


@pytest.mark.parametrize("case", BAD)
def test_a_bad_request_is_a_4xx_with_a_message_and_the_server_goes_on(server, images, expected, case):
    how, status, fragment = BAD[case]
    name, data = next(iter(images.items()))
    with httpx.Client() as client:
        refused = client.post(f"{server}/predict", **how(data))
        assert refused.status_code == status, refused.text
        assert fragment in refused.json()["detail"]
        good = _post(client, server, (name, data))
    assert good.status_code == 200
    _check(good.json()["predictions"][0], expected)


def test_health_and_the_models_facts(server, project):
    assert httpx.get(f"{server}/health").json() == {"status": "ok", "model": MODEL, "backend": "torch"}
    facts = httpx.get(f"{server}/model").json()
    assert {key: facts[key] for key in ("name", "arch", "dataset", "classes", "epoch")} == {
        "name": MODEL, "arch": "catsdogs_cnn", "dataset": "catsdogs", "classes": ["cat", "dog"], "epoch": 1
    }
    preprocessing = TorchBackend(project.model_file(MODEL), "cpu").preprocessing.to_dict()
    assert facts["preprocessing"] == {key: value for key, value in preprocessing.items() if key != "classes"}
    assert facts["test"] == TEST_FIGURES and facts["temperature"] == 0.5
    assert facts["params"]["arch.dense"] == {"value": 8, "default": CatsDogsCnnArgs().dense}


def test_the_page_is_a_plain_form_and_a_post_shows_bars(server, images, expected):
    page = httpx.get(f"{server}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<form action="/" method="post" enctype="multipart/form-data">' in page.text
    assert f'<input type="file" name="{FIELD}"' in page.text and "<script" not in page.text.lower()
    name, data = next(iter(images.items()))
    shown = httpx.post(f"{server}/", files={FIELD: (name, data)})
    assert shown.status_code == 200 and f"<h2>{name}</h2>" in shown.text
    for cls, probability in zip(("cat", "dog"), expected[name], strict=True):
        assert f'{cls}</td><td><div class="bar"><span style="width: {probability * 100:.1f}%">' in shown.text
    refused = httpx.post(f"{server}/", files={FIELD: ("x.jpg", b"")})
    assert refused.status_code == 422 and '<p class="error">not a usable image: x.jpg: empty file' in refused.text


CLIENTS, REQUESTS = 8, 50


def test_concurrent_clients_all_get_their_own_right_answer(server, images, expected):
    names = list(images)
    answers: list[list[str]] = [[] for _ in range(CLIENTS)]
    failures: list[str] = []

    def client_loop(index: int) -> None:
        with httpx.Client(timeout=60) as client:
            for request in range(REQUESTS):
                name = names[(index + request) % len(names)]
                try:
                    response = _post(client, server, (name, images[name]))
                    prediction = response.json()["predictions"][0]
                    assert response.status_code == 200 and prediction["filename"] == name
                    _check(prediction, expected)
                except Exception as exc:  # noqa: BLE001 - reported below, with the others
                    failures.append(f"client {index}, request {request}: {exc!r}")
                else:
                    answers[index].append(name)

    threads = [threading.Thread(target=client_loop, args=(index,)) for index in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert [len(received) for received in answers] == [REQUESTS] * CLIENTS


@pytest.mark.slow
def test_the_onnx_backend_serves_the_same_answers(project, images, expected):
    pytest.importorskip("pipeline.inference.onnx_backend")
    export = pytest.importorskip("pipeline.stages.export")
    export.export(MODEL, project)
    with running_server(MODEL, "--backend", "onnx", cwd=project.root) as url:
        assert httpx.get(f"{url}/health").json()["backend"] == "onnx"
        predictions = _post(httpx.Client(), url, *images.items()).json()["predictions"]
    for prediction in predictions:
        probabilities = expected[prediction["filename"]]
        got = {entry["class"]: entry["probability"] for entry in prediction["top"]}
        np.testing.assert_allclose([got["cat"], got["dog"]], probabilities, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["nonesuch"], "MODEL: 'nonesuch' is neither a model file nor a model under `models`"),
        ([MODEL, "--top", "3"], "--top 3: the model has 2 classes (cat, dog); give 1 to 2"),
        ([MODEL, "--backend", "tf"], "--backend: 'tf' is not one of torch, onnx"),
    ],
)
def test_a_usage_error_is_one_line_before_anything_listens(project, monkeypatch, args, fragment):
    monkeypatch.chdir(project.root)
    assert_clean_error(invoke("serve", *args), fragment)


def test_the_onnx_backend_without_an_export_is_one_line(project, tmp_path):
    model = tmp_path / "copy.pt"  # beside no .onnx, whatever the export test wrote beside the project's
    model.write_bytes(project.model_file(MODEL).read_bytes())
    result = invoke("serve", str(model), "--backend", "onnx")
    assert_clean_error(result, f"{tmp_path / 'copy.onnx'} not found; export the model to ONNX first")


def test_a_server_that_cannot_start_is_an_error_with_its_output():
    exited = r"the server exited \(2\) before it was ready"
    with pytest.raises(PipelineError, match=exited) as error, running_server(MODEL, "--max-bytes", "0"):
        pass
    assert "Invalid value for '--max-bytes'" in str(error.value)


def test_another_program_answering_on_the_port_is_not_taken_for_the_server(project, monkeypatch):
    """The port found free is taken by another program before the server binds it, and that program answers
    `/health` with a 200: the server's own exit is reported, not the other program's answer."""
    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AnswersEverything)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    monkeypatch.setattr(launch, "free_port", lambda: other.server_address[1])
    try:
        with pytest.raises(PipelineError, match="the server exited"), running_server(MODEL, cwd=project.root):
            pass
    finally:
        other.shutdown()
        other.server_close()


class _AnswersEverything(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass
