"""The app run by uvicorn, with the server-wide limits and a graceful stop.

Connections: uvicorn's `limit_concurrency` answers a request on a connection over `max_concurrent` with 503 at once,
before reading it. Its own 503 says neither what the limit is nor when to come back, so the server replaces it with a
JSON one that does, with `Retry-After` (uvicorn picks that answer from its HTTP module, h11, which the server asks
for by name).

Stopping: on SIGTERM or SIGINT (Ctrl+C) uvicorn stops accepting connections, closes the idle ones and waits for every
request in progress to be answered (at most `timeout` seconds, the per-request limit, after which it cancels the
rest); then the app's shutdown lets the batcher score whatever is still queued. A second Ctrl+C stops at once. The
process then exits 0: uvicorn raises the signal again for the handler it found, and here that handler does nothing.
"""

import math
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import uvicorn
from starlette.responses import JSONResponse
from starlette.types import ASGIApp
from uvicorn.protocols.http import h11_impl

from pipeline.serving import RETRY_AFTER, Limits

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def busy(max_concurrent: int) -> JSONResponse:
    """The 503 a request over the connection limit gets: what the limit is, and when to try again."""
    return JSONResponse(
        {"detail": f"busy: {max_concurrent} connections already (--max-concurrent); try again in {RETRY_AFTER} s"},
        503,
        {"Retry-After": str(RETRY_AFTER), "Connection": "close"},
    )


def serve(app: ASGIApp, host: str, port: int, limits: Limits) -> None:
    """Serve `app` on `host:port` until SIGTERM or SIGINT, then stop gracefully (the module says how)."""
    with _signals_after_the_stop_ignored():
        configured(app, host, port, limits).run()


def configured(app: ASGIApp, host: str, port: int, limits: Limits) -> uvicorn.Server:
    """A uvicorn server for `app` on `host:port` with `limits`, not yet started. Its `run()` serves until a signal
    (in the main thread) or until its `should_exit` is set; `handle_exit(signal, None)` is what a signal does."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http="h11",
        log_level="warning",
        # uvicorn refuses a request once the open connections, its own included, reach the limit: one more than
        # `max_concurrent` lets exactly that many be served at once.
        limit_concurrency=limits.max_concurrent + 1,
        timeout_graceful_shutdown=math.ceil(limits.timeout),
    )
    h11_impl.service_unavailable = busy(limits.max_concurrent)
    return _GracefulServer(config)


class _GracefulServer(uvicorn.Server):
    """uvicorn's server, saying when it starts to stop and why it takes a while."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Say so at the first signal, then stop as uvicorn does."""
        if not self.should_exit:
            print(
                f"{signal.Signals(sig).name}: stopping; no new connections, answering the requests in progress "
                "(Ctrl+C again stops at once)",
                file=sys.stderr,
                flush=True,
            )
        super().handle_exit(sig, frame)


@contextmanager
def _signals_after_the_stop_ignored() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM do nothing but what uvicorn's own handlers do while it serves: the signal
    it raises again once stopped then ends nothing, and the process exits 0."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
