"""The HTTP server of `pipeline serve`, a FastAPI app around one backend (`pipeline.inference.backend`).

Routes: `POST /predict` (images as multipart/form-data file fields named `file`, repeatable; JSON, per image in the
order sent, its filename and top-k classes), `GET /health`, `GET /model` (the model's facts, `pipeline.serving.
facts`), `GET /` (a form, `pipeline.serving.page`) and `POST /` (the same page with the probabilities as bars).

Every image is prepared as `pipeline predict` prepares it (`pipeline.inference.predict.prepared`: preprocess's header
checks and decoding, with the model's own settings), in a worker thread, and scored by the `Batcher`, which puts the
images of concurrent requests into one model call. A request is all or nothing: if any of its files cannot be used
it gets a 4xx that names each one and why, and nothing is scored (the statuses: `pipeline.serving.uploads` and
docs/how-to/serve.md). A request has `limits.timeout` seconds from its headers read to its answer: a body still
arriving then is a 408, an answer still waiting for the model a 503. With a token, `pipeline.serving.auth` guards
every route but `/health`.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from pipeline.inference.backend import Backend
from pipeline.inference.predict import prepared, ranked
from pipeline.serving import MAX_BATCH, RETRY_AFTER, Limits
from pipeline.serving.auth import TokenGuard
from pipeline.serving.batching import Batcher
from pipeline.serving.page import page
from pipeline.serving.uploads import Refused, read_uploads

TOP = 5  # classes per image when --top is not given (or all, for fewer classes)


def create_app(
    backend: Backend,
    facts: dict[str, Any],
    *,
    limits: Limits = Limits(),
    token: str | None = None,
    top: int | None = None,
    max_batch: int = MAX_BATCH,
    batch_wait: float = 0.0,
) -> FastAPI:
    """The app serving `backend`, described by `facts` (`model_facts`): requests over `limits` are refused, and
    without `token` too when one is given; each image gets its `top` classes (default: 5, or all the model has if
    fewer; `?top=K` per request); the model scores up to `max_batch` images a call, waiting `batch_wait` seconds for
    more (0: only those already waiting)."""
    classes = list(backend.preprocessing.classes)
    default_top = top or min(TOP, len(classes))
    batcher = Batcher(backend, max_batch, batch_wait)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        yield
        await batcher.stop()

    # No /docs: FastAPI's pages load their scripts from a CDN, and docs/how-to/serve.md documents the routes.
    app = FastAPI(title=f"pipeline serve: {facts['name']}", lifespan=lifespan, docs_url=None, redoc_url=None)
    if token is not None:
        app.add_middleware(TokenGuard, token=token)

    async def predictions(request: Request) -> list[dict[str, Any]]:
        deadline = asyncio.get_running_loop().time() + limits.timeout
        try:
            async with asyncio.timeout_at(deadline):
                files = await read_uploads(request, limits)
        except TimeoutError:
            raise _late(408, f"the request body did not arrive within {limits.timeout:g} s (--timeout)") from None
        k = _top(request.query_params.get("top"), default_top, len(classes))
        try:
            async with asyncio.timeout_at(deadline):
                images = await run_in_threadpool(_prepared, files, backend)
                scored = await batcher.probabilities(images)
        except TimeoutError:
            raise _late(503, f"busy: no answer within {limits.timeout:g} s (--timeout)") from None
        tops = [[{"class": c, "probability": round(p, 6)} for c, p in ranked(row, classes, k)] for row in scored]
        return [{"filename": name, "class": top[0]["class"], "top": top} for (name, _), top in zip(files, tops, strict=True)]

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        """Images in, their most probable classes out (JSON)."""
        try:
            return JSONResponse({"model": facts["name"], "predictions": await predictions(request)})
        except Refused as refused:
            return JSONResponse({"detail": refused.message}, refused.status, refused.headers)

    @app.get("/", response_class=HTMLResponse)
    async def form() -> HTMLResponse:
        """The page with the form."""
        return HTMLResponse(page(facts))

    @app.post("/", response_class=HTMLResponse)
    async def form_posted(request: Request) -> HTMLResponse:
        """The page with the posted images' probabilities as bars, or what was wrong with the post."""
        try:
            return HTMLResponse(page(facts, await predictions(request)))
        except Refused as refused:
            return HTMLResponse(page(facts, error=refused.message), refused.status, refused.headers)

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Up and serving this model."""
        return {"status": "ok", "model": facts["name"], "backend": facts["backend"]}

    @app.get("/model")
    async def model() -> dict[str, Any]:
        """What the model is: its card's facts."""
        return facts

    return app


def _prepared(files: list[tuple[str, bytes]], backend: Backend) -> np.ndarray:
    """The files as the model's input images, stacked; a 422 naming every file that is not a usable image."""
    images, refused = [], []
    for name, data in files:
        image, reason = prepared(data, name, backend.preprocessing)
        if image is None:
            refused.append(f"{name}: {reason}")
        images.append(image)
    if refused:
        scored = " (nothing was scored; send the others alone)" if len(files) > len(refused) else ""
        raise Refused(422, "not a usable image: " + "; ".join(refused) + scored)
    return np.stack(images)


def _late(status: int, why: str) -> Refused:
    """A request out of time: 408 while its body was still arriving (the connection is closed: the rest is never
    read), else 503 (the server is overloaded)."""
    headers = {"Connection": "close"} if status == 408 else {"Retry-After": str(RETRY_AFTER)}
    return Refused(status, f"{why}; try again, with fewer images or later", headers)


def _top(given: str | None, default: int, classes: int) -> int:
    if given is None:
        return default
    if not given.isdigit() or not 1 <= int(given) <= classes:
        raise Refused(422, f"top={given}: give a number of classes from 1 to {classes}")
    return int(given)
