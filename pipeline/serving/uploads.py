"""The images of a request: multipart/form-data file fields named `file`, read under the server's `Limits`.

The size limit is on the whole request body. A declared Content-Length over it is refused before any byte is read; a
body without one (chunked) or longer than it said is counted as it streams in, and refused as soon as the count
passes the limit, so no request holds more than `max_bytes` (Starlette keeps each file in memory up to 1 MB, then
in a temporary file). Starlette's parser counts the parts as they come: a request with more files than `max_images`
or more text fields than `max_fields` is refused at the first one over. Everything a client can get wrong is a `Refused`: its HTTP status and a message that says
what to send instead.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request

from pipeline.serving import Limits

FIELD = "file"
HOW = f"send each image as a multipart/form-data file field named '{FIELD}' (repeatable), e.g. curl -F {FIELD}=@photo.jpg"


@dataclass
class Refused(Exception):
    """A request the server will not score: the HTTP status, the message, headers for the response."""

    status: int
    message: str
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


def too_large(max_bytes: int, size: int | None = None) -> Refused:
    """413 for a body over `max_bytes`, `size` bytes if it said so."""
    declared = f"of {size:,} bytes " if size is not None else ""
    return over_a_limit(
        f"request body {declared}over the limit of {max_bytes:,} bytes (--max-bytes); send fewer or smaller images"
    )


def over_a_limit(message: str) -> Refused:
    """413, and the connection closed: the rest of the body is never read."""
    return Refused(413, message, {"Connection": "close"})


async def read_uploads(request: Request, limits: Limits) -> list[tuple[str, bytes]]:
    """(filename, bytes) of every file in the request's `file` fields, in order; a `Refused` if the body is over
    `limits` (bytes, files, text fields), not multipart/form-data, malformed, or has no `file` field holding a file."""
    max_bytes = limits.max_bytes
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise too_large(max_bytes, int(length))
    kind = request.headers.get("content-type", "")
    if not kind and length in ("", "0") and "transfer-encoding" not in request.headers:
        raise Refused(422, f"no file: the request has no body; {HOW}")
    if not kind.startswith("multipart/form-data"):
        raise Refused(415, f"the body is {kind or 'untyped'}, not multipart/form-data; {HOW}")
    try:
        form = await Request(request.scope, limited(request.receive, max_bytes)).form(
            max_files=limits.max_images, max_fields=limits.max_fields
        )
    except HTTPException as exc:  # Starlette's word for a body python-multipart cannot parse, or one over a count
        raise _unparsed(exc.detail, limits) from None
    try:
        return await _files(form.multi_items())
    finally:
        await form.close()


async def _files(items: list[tuple[str, Any]]) -> list[tuple[str, bytes]]:
    named = [value for key, value in items if key == FIELD]
    if not named:
        others = ", ".join(sorted({f"'{key}'" for key, _ in items}))
        raise Refused(422, f"no field named '{FIELD}'" + (f" (got {others})" if others else "") + f"; {HOW}")
    if any(not isinstance(value, UploadFile) for value in named):
        raise Refused(422, f"field '{FIELD}' holds text, not a file; {HOW}")
    files = [(value.filename or "", await value.read()) for value in named]
    files = [(name, data) for name, data in files if name or data]  # nameless and empty: a form with no file chosen
    if any(not name for name, _ in files):
        raise Refused(422, f"a '{FIELD}' field without a filename: its extension (.jpg, .png, ...) says the format; {HOW}")
    if not files:
        raise Refused(422, f"no file: field '{FIELD}' is empty; {HOW}")
    return files


def _unparsed(detail: str, limits: Limits) -> Refused:
    """Why Starlette's parser stopped, as a `Refused`: 413 for a count over the limits, else 400."""
    if detail.startswith("Too many files"):
        return over_a_limit(
            f"more than {limits.max_images} files in one request (--max-images); send the others in another request"
        )
    if detail.startswith("Too many fields"):
        return over_a_limit(
            f"more than {limits.max_fields} text fields in one request (--max-fields); {HOW}, and no other fields"
        )
    return Refused(400, f"not a well-formed multipart/form-data body ({detail}); {HOW}")


Receive = Callable[[], Awaitable[dict[str, Any]]]


def limited(receive: Receive, max_bytes: int) -> Receive:
    """`receive`, raising `too_large` once the body it has passed on reaches more than `max_bytes`."""
    seen = 0

    async def counted() -> dict[str, Any]:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > max_bytes:
                raise too_large(max_bytes)
        return message

    return counted
