"""`pipeline serve`'s guards, over HTTP to its app and uvicorn's configuration in a thread of this process, with a
stand-in model (tests/stand_in.py): the token (401 without it, on every route but /health; 200 with it; the page's
login and cookie), the limits on files, text fields, time and connections; and the command's refusal to serve a
network without a token, its flags reaching the server."""

import asyncio
import secrets
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from test_cli import assert_clean_error, invoke

from pipeline.serving import TOKEN_ENV, Limits
from pipeline.serving.app import create_app
from pipeline.serving.auth import COOKIE, LOGIN, TOKEN_FIELD, is_loopback
from pipeline.serving.uploads import FIELD
from tests.helpers.image_trees import image
from tests.helpers.model_files import image_meta, untrained_model
from tests.helpers.stand_in import FACTS, StandInModel, eventually, refused, serving_app, stand_in_server

TOKEN = "k8Jt-3xQ_pZr7yLw2vN9"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
PHOTO = ("photo.jpg", image(1, 20, 12))


def _files(*named: tuple[str, bytes]) -> list[tuple[str, tuple[str, bytes]]]:
    return [(FIELD, file) for file in named]


@pytest.fixture(scope="module")
def guarded():
    """A client of the server started with `TOKEN`."""
    with stand_in_server(token=TOKEN) as serving, httpx.Client(base_url=serving.url) as client:
        yield client


@contextmanager
def client_of(limits: Limits = Limits(), model: StandInModel | None = None) -> Iterator[httpx.Client]:
    """A client of a stand-in server with `limits`, without a token."""
    with stand_in_server(limits, model=model) as serving, httpx.Client(base_url=serving.url, timeout=10) as client:
        yield client


@pytest.mark.parametrize(("method", "path"), [("POST", "/predict"), ("GET", "/model"), ("GET", "/docs"),
                                              ("PUT", "/nonesuch")])
def test_without_the_token_every_route_but_health_is_a_401_saying_how_to_send_it(guarded, method, path):
    refused = guarded.request(method, path, files=_files(PHOTO) if method == "POST" else None)
    assert refused.status_code == 401
    assert refused.json()["detail"].startswith("this server needs its token: send the header 'Authorization: Bearer")
    assert TOKEN_ENV in refused.json()["detail"]
    assert refused.headers["www-authenticate"] == 'Bearer realm="pipeline serve"'
    assert guarded.get("/health").json()["status"] == "ok"


def test_a_wrong_token_is_a_401_and_the_right_one_a_200_compared_in_constant_time(guarded, monkeypatch):
    compared = []
    real = secrets.compare_digest
    monkeypatch.setattr(secrets, "compare_digest", lambda a, b: compared.append((a, b)) or real(a, b))
    wrong = guarded.post("/predict", files=_files(PHOTO), headers={"Authorization": f"Bearer {TOKEN[:-1]}x"})
    assert wrong.status_code == 401 and wrong.json()["detail"].startswith("wrong token: ")
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
    right = guarded.post("/predict", files=_files(PHOTO), headers=BEARER)
    assert right.status_code == 200 and right.json()["predictions"][0]["filename"] == "photo.jpg"
    assert (TOKEN.encode(), TOKEN.encode()) in compared


def test_the_page_asks_for_the_token_then_works_with_the_cookie_its_login_sets():
    with stand_in_server(token=TOKEN) as serving, httpx.Client(base_url=serving.url) as browser:
        asked = browser.get("/")
        assert asked.status_code == 401 and f'<form action="{LOGIN}" method="post">' in asked.text
        assert f'name="{TOKEN_FIELD}"' in asked.text and "stand_in" not in asked.text
        wrong = browser.post(LOGIN, data={TOKEN_FIELD: "guess"}, follow_redirects=False)
        assert wrong.status_code == 401 and "wrong token" in wrong.text and COOKIE not in browser.cookies
        logged_in = browser.post(LOGIN, data={TOKEN_FIELD: TOKEN}, follow_redirects=False)
        assert logged_in.status_code == 303 and logged_in.headers["location"] == "/"
        cookie = logged_in.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and TOKEN not in cookie
        assert browser.get("/").status_code == 200
        shown = browser.post("/", files=_files(PHOTO))
    assert shown.status_code == 200 and "<h2>photo.jpg</h2>" in shown.text


def test_more_files_than_max_images_is_a_413_naming_the_option():
    with client_of(Limits(max_images=2)) as client:
        assert client.post("/predict", files=_files(PHOTO, PHOTO)).status_code == 200
        refused = client.post("/predict", files=_files(PHOTO, PHOTO, PHOTO))
    assert refused.status_code == 413 and refused.headers["connection"] == "close"
    assert refused.json()["detail"].startswith("more than 2 files in one request (--max-images); send the others")


def test_more_text_fields_than_max_fields_is_a_413_naming_the_option():
    with client_of(Limits(max_fields=1)) as client:
        assert client.post("/predict", files=_files(PHOTO), data={"note": "a"}).status_code == 200
        refused = client.post("/predict", files=_files(PHOTO), data={"note": "a", "other": "b"})
    assert refused.status_code == 413
    assert refused.json()["detail"].startswith("more than 1 text fields in one request (--max-fields)")


def test_an_answer_later_than_the_timeout_is_a_503_with_retry_after():
    with client_of(Limits(timeout=0.2), StandInModel(delay=0.6)) as client:
        late = client.post("/predict", files=_files(PHOTO))
    assert late.status_code == 503 and late.headers["retry-after"] == "1"
    assert late.json()["detail"].startswith("busy: no answer within 0.2 s (--timeout)")


def test_a_body_slower_than_the_timeout_is_a_408_and_the_connection_closed():
    """A client that sends its headers and part of its body, then nothing: answered at the timeout, not held."""
    app = create_app(StandInModel(), FACTS, limits=Limits(timeout=0.2))
    scope = {"type": "http", "method": "POST", "path": "/predict", "raw_path": b"/predict", "root_path": "",
             "query_string": b"", "scheme": "http", "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1),
             "http_version": "1.1", "asgi": {"version": "3.0"},
             "headers": [(b"content-type", b"multipart/form-data; boundary=b"), (b"content-length", b"1000")]}
    parts = [{"type": "http.request", "body": b"--b\r\n", "more_body": True}]
    sent = []

    async def receive():
        if parts:
            return parts.pop()
        await asyncio.sleep(30)

    async def send(message):
        sent.append(message)

    asyncio.run(asyncio.wait_for(app(scope, receive, send), 5))
    assert sent[0]["status"] == 408 and (b"connection", b"close") in sent[0]["headers"]
    assert b"the request body did not arrive within 0.2 s (--timeout)" in sent[1]["body"]


def test_a_connection_over_max_concurrent_gets_503_with_retry_after_and_the_server_goes_on():
    with stand_in_server(Limits(max_concurrent=3)) as serving:
        host, port = serving.url.removeprefix("http://").split(":")
        held = [socket.create_connection((host, int(port))) for _ in range(2)]
        assert httpx.get(f"{serving.url}/health").status_code == 200  # the third connection
        held.append(socket.create_connection((host, int(port))))
        busy = httpx.get(f"{serving.url}/health")
        for connection in held:
            connection.close()
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
        assert busy.json()["detail"] == "busy: 3 connections already (--max-concurrent); try again in 1 s"
        assert eventually(lambda: httpx.get(f"{serving.url}/health").status_code == 200)


def test_a_stop_answers_every_request_in_progress_then_accepts_no_more():
    """SIGTERM's handler called while six requests wait for the model: all six get their 200."""
    model = StandInModel(gate=threading.Event())
    answers: list[int | str] = []

    def client(url: str) -> None:
        try:
            answers.append(httpx.post(f"{url}/predict", files=_files(PHOTO), timeout=30).status_code)
        except httpx.TransportError as exc:
            answers.append(repr(exc))

    with stand_in_server(model=model) as serving:
        clients = [threading.Thread(target=client, args=(serving.url,)) for _ in range(6)]
        for thread in clients:
            thread.start()
        assert eventually(lambda: len(serving.server.server_state.tasks) == 6)  # all six read, none answered
        serving.server.handle_exit(signal.SIGTERM, None)
        assert eventually(lambda: refused(serving.url))
        model.gate.set()
        for thread in clients:
            thread.join(30)
    assert answers == [200] * 6 and model.scored == 6


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.0.1", "::1", "[::1]", "localhost"])
def test_loopback_addresses_are_recognised(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "my-laptop.local", ""])
def test_a_non_loopback_host_without_a_token_is_refused_before_the_model_loads(host, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    result = invoke("serve", "no-such-model.pt", "--host", host)
    assert_clean_error(result, f"--host {host}: without a token anyone", f"export {TOKEN_ENV}=", "--insecure")


def test_a_short_token_is_refused():
    result = invoke("serve", "no-such-model.pt", "--token", "secret")
    assert_clean_error(result, f"--token / {TOKEN_ENV}: give at least 16 letters, digits or -._~+/= characters")


@pytest.fixture
def started(tmp_path, monkeypatch) -> dict:
    """What `pipeline serve` hands to uvicorn, captured instead of served: app, host, port and limits; with a model
    file (`model` key) to serve."""
    captured = {"model": untrained_model(tmp_path / "m.pt", image_meta(["cat", "dog"]))}
    monkeypatch.setattr("pipeline.serving.server.serve", lambda *args: captured.update(zip(("app", "host", "port",
                                                                                            "limits"), args)))
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    return captured


def test_the_token_from_the_environment_guards_the_served_app_and_the_flags_set_its_limits(started, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    options = ("--max-bytes", "5000", "--max-images", "3", "--max-fields", "2", "--max-concurrent", "7",
               "--timeout", "9")
    result = invoke("serve", str(started["model"]), "--host", "0.0.0.0", "--device", "cpu", *options)
    assert result.exit_code == 0, result.output
    assert "every route but /health needs the token" in result.stdout
    assert started["host"] == "0.0.0.0" and started["limits"] == Limits(5000, 3, 2, 7, 9.0)
    with serving_app(started["app"]) as serving, httpx.Client(base_url=serving.url) as client:
        assert client.post("/predict", files=_files(PHOTO)).status_code == 401
        assert client.post("/predict", files=_files(PHOTO), headers=BEARER).status_code == 200


def test_insecure_serves_a_network_without_a_token_and_says_so_loudly(started):
    result = invoke("serve", str(started["model"]), "--host", "0.0.0.0", "--insecure", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("WARNING: serving on 0.0.0.0 without a token (--insecure)")
    with serving_app(started["app"]) as serving:
        assert httpx.post(f"{serving.url}/predict", files=_files(PHOTO)).status_code == 200
