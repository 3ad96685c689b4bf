"""`pipeline audit review NAME --web`: the audit's findings reviewed in a browser, a FastAPI app.

Routes: `GET /` (the page, `review_page.html`: plain HTML and a little JavaScript, nothing loaded from elsewhere),
`GET /findings` (JSON: the dataset, its classes, every finding (`pipeline.analysis.audit_suspects`) and every
decision so far), `GET /image?path=P` (a finding's image from the raw archive, as PNG or JPEG), `POST /decisions`
(JSON `{"path", "action", "label"}`: `keep`, `exclude`, `relabel` to the class `label`, or `undecided`) and `GET
/health`. Each decision is written at once, atomically, into the files split reads (`pipeline.data.reviews.record`,
as the terminal review writes them), so a closed tab loses nothing and a reopened page shows what was decided. A
path that is no finding's is a 404, a label that is not a class a 422, and the server goes on serving. With a
token, `pipeline.serving.auth` guards every route but `/health`, as it guards `pipeline serve`.
"""

import threading
from dataclasses import dataclass
from importlib.resources import files as package_files
from pathlib import Path
from typing import Literal

import cv2
from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel

from pipeline.analysis.audit_suspects import Suspect, read_suspects
from pipeline.config.datasets import SplitParams
from pipeline.core.paths import Paths
from pipeline.data.archive import open_archive
from pipeline.data.images import decoded
from pipeline.data.raw import read_index
from pipeline.data.reviews import (
    Decision,
    ReviewFiles,
    read_decisions,
    record,
    review_files,
)
from pipeline.serving.auth import TokenGuard

PAGE = "review_page.html"
BROWSER_FORMATS = {b"\x89PNG": "image/png", b"\xff\xd8\xff": "image/jpeg"}  # sent as they are; others as PNG


@dataclass(frozen=True)
class Review:
    """What the review serves: the dataset, its classes, its findings, its raw archive and the files decisions go
    to."""

    dataset: str
    classes: tuple[str, ...]
    suspects: list[Suspect]
    archive: Path
    files: ReviewFiles

    def paths(self) -> set[str]:
        """Every image a finding shows: the only ones the page may ask for or decide on."""
        return {image.path for suspect in self.suspects for image in suspect.images}


class Posted(BaseModel):
    """A decision as the page posts it."""

    path: str
    action: Literal["keep", "exclude", "relabel", "undecided"]
    label: str | None = None


def open_review(dataset: str, split: SplitParams, paths: Paths) -> Review:
    """The dataset's review: its findings (an error that says to run the audit when there are none), its classes
    from the raw index, and the files `split.<dataset>.exclude` / `relabel` name (reviews/<dataset>/ by default)."""
    suspects = read_suspects(paths, dataset)
    classes = read_index(paths, dataset).classes
    return Review(dataset, classes, suspects, paths.raw_archive(dataset), review_files(dataset, split, paths.root))


def create_review_app(review: Review, token: str | None = None) -> FastAPI:
    """The app serving `review` (the module says its routes), guarded by `token` when one is given."""
    app = FastAPI(title=f"audit review: {review.dataset}", docs_url=None, redoc_url=None)
    if token is not None:
        app.add_middleware(TokenGuard, token=token)
    known, writing = review.paths(), threading.Lock()
    archive, reading = open_archive(review.archive), threading.Lock()

    @app.get("/", response_class=HTMLResponse)
    def page() -> HTMLResponse:
        """The review page."""
        return HTMLResponse(package_files(__package__).joinpath(PAGE).read_text())

    @app.get("/findings")
    def findings() -> dict:
        """The dataset, its classes, every finding and every decision so far."""
        decisions = read_decisions(review.files)
        return {
            "dataset": review.dataset,
            "classes": list(review.classes),
            "findings": [suspect.as_json() for suspect in review.suspects],
            "decisions": {path: _decision_json(decisions[path]) for path in known & set(decisions)},
        }

    @app.get("/image")
    def image(path: str) -> Response:
        """A finding's image, as PNG or JPEG."""
        _check_known(path, known)
        with reading:
            data = archive.read(path)
        return _browser_image(data, path)

    @app.post("/decisions")
    def decide(posted: Posted) -> dict:
        """Record one decision (or `undecided`: none) for one image, at once; returns it."""
        _check_known(posted.path, known)
        decision = _decision(posted, review.classes)
        with writing:
            record(review.files, {posted.path: decision})
        return {"path": posted.path, "decision": _decision_json(decision)}

    @app.get("/health")
    def health() -> dict[str, str]:
        """Up and serving this dataset's review."""
        return {"status": "ok", "dataset": review.dataset}

    return app


def _check_known(path: str, known: set[str]) -> None:
    if path not in known:
        raise HTTPException(404, f"{path!r}: no finding of the audit shows this image")


def _decision(posted: Posted, classes: tuple[str, ...]) -> Decision | None:
    """The decision posted (None for `undecided`); a 422 for a relabel to anything but a class."""
    if posted.action == "undecided":
        return None
    if posted.action != "relabel":
        return Decision(posted.action)
    if posted.label not in classes:
        raise HTTPException(422, f"label {posted.label!r}: relabel to one of the classes: {', '.join(classes)}")
    return Decision("relabel", posted.label)


def _decision_json(decision: Decision | None) -> dict | None:
    return None if decision is None else {"action": decision.action, "label": decision.label}


def _browser_image(data: bytes, path: str) -> Response:
    """PNG and JPEG as they are; any other image decoded and sent as PNG; a 422 for bytes that decode to none."""
    for magic, media_type in BROWSER_FORMATS.items():
        if data.startswith(magic):
            return Response(data, media_type=media_type)
    pixels = decoded(data, "rgb")
    if pixels is None:
        raise HTTPException(422, f"{path!r}: not a decodable image")
    return Response(cv2.imencode(".png", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))[1].tobytes(), media_type="image/png")
