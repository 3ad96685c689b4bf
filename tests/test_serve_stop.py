"""`pipeline serve` as a new user tries it: started with a token (from PIPELINE_SERVE_TOKEN), 401 without it and 200
with it; under load from several clients, with malformed, oversize and unauthorised requests mixed in, each answered
with its own status; then stopped by SIGTERM or Ctrl+C (SIGINT) while requests are still uploading: it accepts no
new connection, answers every request in flight with 200, and exits 0."""

import itertools
import signal
import threading

import httpx
import pytest

from pipeline.serving import TOKEN_ENV
from pipeline.serving.launch import server_process
from pipeline.serving.uploads import FIELD
from tests.helpers.image_trees import image
from tests.helpers.model_files import image_meta, untrained_model
from tests.helpers.stand_in import eventually, refused

TOKEN = "Zq4-newuser_token-8mW2"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
MAX_BYTES = 100_000
PHOTO = image(5, 48, 32)
CLIENTS, REQUESTS, IN_FLIGHT = 4, 12, 4


def _files(count: int = 1, data: bytes = PHOTO) -> list[tuple[str, tuple[str, bytes]]]:
    return [(FIELD, (f"photo{n}.jpg", data)) for n in range(count)]


# Each kind of request of the load: how to send it, and the status it must get.
LOAD = {
    "good": ({"files": _files(), "headers": BEARER}, 200),
    "malformed": ({"content": b"garbage", "headers": {**BEARER, "content-type": "multipart/form-data"}}, 400),
    "oversize": ({"files": _files(data=PHOTO * (MAX_BYTES // len(PHOTO) + 1)), "headers": BEARER}, 413),
    "too many images": ({"files": _files(5), "headers": BEARER}, 413),
    "not an image": ({"files": [(FIELD, ("x.jpg", b"not a jpeg"))], "headers": BEARER}, 422),
    "no token": ({"files": _files()}, 401),
}


def _load(url: str) -> list[str]:
    """`CLIENTS` clients sending `REQUESTS` requests each, cycling through `LOAD`; what went wrong, if anything."""
    wrong: list[str] = []

    def client(index: int) -> None:
        kinds = itertools.islice(itertools.cycle(LOAD), index, index + REQUESTS)
        with httpx.Client(timeout=30) as session:
            for kind in kinds:
                how, status = LOAD[kind]
                try:
                    got = session.post(f"{url}/predict", **how).status_code
                except httpx.TransportError as exc:
                    got = exc.__class__.__name__
                # A 413 closes the connection without reading the body: a client still sending it may see that first.
                if got != status and not (status == 413 and isinstance(got, str)):
                    wrong.append(f"{kind}: {got}, not {status}")

    threads = [threading.Thread(target=client, args=(index,)) for index in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return wrong


def _held_uploads(url: str, release: threading.Event, answers: list) -> list[tuple[threading.Thread, threading.Event]]:
    """`IN_FLIGHT` requests that send their headers and half their body, then the rest once `release` is set; each
    with the event it sets once its headers are sent."""
    request = httpx.Request("POST", f"{url}/predict", files=_files(), headers=BEARER)
    body = request.read()
    headers = {**BEARER, "content-type": request.headers["content-type"], "content-length": str(len(body))}

    def upload(sent: threading.Event) -> None:
        def halves():
            sent.set()  # httpx asks for the body once the headers are out
            yield body[: len(body) // 2]
            release.wait(30)
            yield body[len(body) // 2 :]

        try:
            answers.append(httpx.post(f"{url}/predict", content=halves(), headers=headers, timeout=30).status_code)
        except httpx.TransportError as exc:
            answers.append(repr(exc))

    uploads = [(threading.Thread(target=upload, args=(sent,)), sent) for sent in (threading.Event() for _ in
                                                                                 range(IN_FLIGHT))]
    for thread, _ in uploads:
        thread.start()
    return uploads


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl+C"])
def test_a_guarded_server_under_mixed_load_stops_answering_every_request_in_flight(tmp_path, stop):
    model = untrained_model(tmp_path / "model.pt", image_meta(["cat", "dog"]))
    options = ("--device", "cpu", "--max-bytes", str(MAX_BYTES), "--max-images", "4")
    with server_process(model, *options, env={TOKEN_ENV: TOKEN}) as served:
        assert httpx.get(f"{served.url}/model").status_code == 401
        assert httpx.get(f"{served.url}/model", headers=BEARER).status_code == 200
        assert _load(served.url) == []

        release, answers = threading.Event(), []
        uploads = _held_uploads(served.url, release, answers)
        assert all(sent.wait(30) for _, sent in uploads)
        # Answered after the uploads' headers arrived, so the server has read those: all four are in flight.
        assert httpx.get(f"{served.url}/health").status_code == 200
        served.process.send_signal(stop)
        assert eventually(lambda: refused(served.url))
        release.set()
        for thread, _ in uploads:
            thread.join(30)
        assert served.process.wait(30) == 0, served.said()
        said = served.said()
    assert answers == [200] * IN_FLIGHT, said
    assert f"{stop.name}: stopping; no new connections, answering the requests in progress" in said
