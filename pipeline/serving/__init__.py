"""Serving a trained model over HTTP: `pipeline serve` (app, the routes; uploads, reading them under a size limit;
batching, several requests' images in one model call; facts, what `GET /model` says; page, the HTML form), the
server started as a process (launch) and `pipeline bench-predict` (bench)."""

# Defaults the CLI shows without importing FastAPI.
MAX_BYTES = 10_000_000  # largest request body accepted (413 above it)
MAX_BATCH = 64  # images the model scores in one call, from concurrent requests
