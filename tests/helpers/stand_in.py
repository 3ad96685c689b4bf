"""The server's app around a stand-in for a trained model, served by uvicorn as `pipeline serve` configures it
(`pipeline.serving.server.configured`), in a thread of the test's process on a free port of 127.0.0.1: real HTTP,
without starting a process and loading torch. The stand-in's probabilities are a function of the image alone, so an
image's answer does not depend on what else was in its request or batch."""

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import numpy as np
import uvicorn
from starlette.types import ASGIApp

from pipeline.core.preprocessing import Preprocessing
from pipeline.serving import Limits
from pipeline.serving.app import create_app
from pipeline.serving.launch import HOST, free_port
from pipeline.serving.server import configured

CLASSES = ["cat", "dog"]
FACTS = {"name": "stand_in", "classes": CLASSES, "backend": "torch"}
START_TIMEOUT = 10.0
GATE_TIMEOUT = 30.0  # a test that never opens the gate still ends


class StandInModel:
    """A backend for 16x16 RGB images: P(dog) is the image's mean pixel on the [0, 1] scale; each call waits for
    `gate` (when given) to open, then takes `delay` seconds, and counts the images it scored."""

    preprocessing = Preprocessing(16, "rgb", "squash", False, [0.5] * 3, [0.25] * 3, CLASSES)
    temperature = 1.0

    def __init__(self, delay: float = 0.0, gate: threading.Event | None = None) -> None:
        self.delay, self.gate = delay, gate
        self.scored = 0

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """[1 - mean, mean] per image."""
        if self.gate is not None:
            self.gate.wait(GATE_TIMEOUT)
        time.sleep(self.delay)
        self.scored += len(images)
        dog = images.reshape(len(images), -1).mean(axis=1) / 255
        return np.stack([1 - dog, dog], axis=1).astype(np.float32)


@dataclass(frozen=True)
class Serving:
    """A server running in a thread: its base URL and the uvicorn server (`handle_exit` stops it as a signal would)."""

    url: str
    server: uvicorn.Server


@contextmanager
def serving_app(app: ASGIApp, limits: Limits = Limits()) -> Iterator[Serving]:
    """`app` served with `limits` until the block ends (then stopped as SIGTERM stops it, and waited for)."""
    port = free_port()
    server = configured(app, HOST, port, limits)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield Serving(f"http://{HOST}:{port}", server)
    finally:
        server.should_exit = True
        thread.join(START_TIMEOUT)


@contextmanager
def stand_in_server(limits: Limits = Limits(), token: str | None = None, model: StandInModel | None = None
                    ) -> Iterator[Serving]:
    """The app serving `model` (by default a `StandInModel` without delay), with `limits` and `token`."""
    with serving_app(create_app(model or StandInModel(), FACTS, limits=limits, token=token), limits) as serving:
        yield serving


def eventually(condition: Callable[[], bool], within: float = 20.0) -> bool:
    """Whether `condition()` comes true within `within` seconds, asked every twentieth of a second (a server's
    state follows a client's action after a moment, longer on a busy machine)."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def refused(url: str) -> bool:
    """Whether a new connection to `url` is refused (nothing listens any more)."""
    try:
        httpx.get(f"{url}/health", timeout=2)
    except httpx.ConnectError:
        return True
    return False
