"""Serving a trained model over HTTP: `pipeline serve` (app, the routes; uploads, reading them under the limits;
batching, several requests' images in one model call; auth, the token; server, uvicorn with the limits and a
graceful stop; facts, what `GET /model` says; page, the HTML form), the server started as a process (launch),
`pipeline bench-predict` (bench), and `pipeline audit review NAME --web` (review: the audit's findings reviewed in a
browser, behind the same auth)."""

from dataclasses import dataclass

# Defaults the CLI shows without importing FastAPI.
MAX_BYTES = 10_000_000  # largest request body accepted (413 above it)
MAX_BATCH = 64  # images the model scores in one call, from concurrent requests
MAX_IMAGES = 64  # files in one request (413 above it): one full batch
MAX_FIELDS = 16  # text fields in one request (413 above it); the page's form and `curl -F file=@...` send none
MAX_CONCURRENT = 64  # connections served at once (503 with Retry-After above it)
TIMEOUT = 60.0  # seconds a request may take, from its headers read to its answer (408 or 503 after it)
RETRY_AFTER = 1  # seconds a client told "busy" (503) should wait before it tries again
TOKEN_ENV = "PIPELINE_SERVE_TOKEN"


@dataclass(frozen=True)
class Limits:
    """What one request, and all of them together, may ask of the server: each a `pipeline serve` option."""

    max_bytes: int = MAX_BYTES
    max_images: int = MAX_IMAGES
    max_fields: int = MAX_FIELDS
    max_concurrent: int = MAX_CONCURRENT
    timeout: float = TIMEOUT
