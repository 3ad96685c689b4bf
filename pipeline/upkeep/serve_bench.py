"""Command `bench-predict`: how fast a trained model predicts on the CPU, alone and behind the server.

On generated photos (`pipeline make-images`: 96 to 320 pixels a side, JPEG mostly, some PNG), for each backend
(PyTorch, and ONNX Runtime when the model has an export and the pipeline its backend):
- model: images/s of `backend.probabilities` on images already prepared, `batch` at a time;
- predict: images/s of `predict_items`, what `pipeline predict` runs: header checks, decoding, squaring and the model.
Each figure is the best of `REPEATS` timed passes over all the images, after one untimed pass: on a shared machine
the pass least disturbed by other work.

Then the server (`pipeline serve`, started on a free port of 127.0.0.1) under `clients` concurrent clients (threads,
each with its own connection) sending `requests` requests of one image each, `ROUNDS` times: requests/s (the median
round's) and the latency percentiles (over every request), with the default batching, with none (`--max-batch 1`:
one request at a time, as a lock around the model would do) and with a 5 ms wait for more requests. The clients run
in this process, on the same CPU as the server: on a small machine their work is part of what is measured.
"""

import math
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from pipeline.core.errors import PipelineError
from pipeline.onboarding.shapes import make_images
from pipeline.inference.inputs import Item
from pipeline.inference.predict import BACKENDS, open_backend, predict_items, prepared
from pipeline.serving.launch import running_server
from pipeline.serving.uploads import FIELD

BATCHES = (1, 64)
REPEATS = 5
ROUNDS = 3
WARMUP_REQUESTS = 8
CPU = ("--device", "cpu")
SERVERS = (
    ("torch, batching (default)", CPU),
    ("torch, no batching (--max-batch 1)", (*CPU, "--max-batch", "1")),
    ("torch, batching, --batch-wait-ms 5", (*CPU, "--batch-wait-ms", "5")),
)


def bench(model_file: Path, images: int = 256, clients: int = 8, requests: int = 50) -> dict[str, Any]:
    """Predict's images/s per backend and batch size, and the server's requests/s and latency, for `model_file`."""
    with tempfile.TemporaryDirectory() as scratch:
        make_images(Path(scratch) / "photos", "class_folders", classes=3, per_class=math.ceil(images / 3))
        photos = [(path.name, path.read_bytes()) for path in sorted((Path(scratch) / "photos").rglob("*.*"))]
    photos = photos[:images]
    figures: dict[str, Any] = {"model": str(model_file), "images": len(photos), "predict": [], "skipped": []}
    for kind in BACKENDS:
        try:
            backend = open_backend(kind, model_file, "cpu")
        except PipelineError as exc:
            figures["skipped"].append(f"{kind}: {exc}")
            continue
        figures["predict"] += [_predict_speed(kind, backend, photos, batch) for batch in BATCHES]
    servers = list(SERVERS)
    if any(row["backend"] == "onnx" for row in figures["predict"]):
        servers.append(("onnx, batching (default)", ("--backend", "onnx")))
    figures["server"] = [
        _server_speed(model_file, label, options, photos, clients, requests) for label, options in servers
    ]
    figures.update(clients=clients, requests=requests)
    return figures


def _predict_speed(kind: str, backend, photos: list[tuple[str, bytes]], batch: int) -> dict[str, Any]:
    items = [Item(name, name, data) for name, data in photos]
    arrays = [prepared(data, name, backend.preprocessing)[0] for name, data in photos]
    ready = np.stack([array for array in arrays if array is not None])

    def model_only() -> None:
        for start in range(0, len(ready), batch):
            backend.probabilities(ready[start : start + batch])

    return {
        "backend": kind,
        "batch": batch,
        "model_images_per_s": len(ready) / _best_time(model_only),
        "predict_images_per_s": len(items) / _best_time(lambda: predict_items(backend, items, batch)),
    }


def _best_time(run: Callable[[], object]) -> float:
    run()
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def _server_speed(model_file: Path, label: str, options: tuple[str, ...], photos: list[tuple[str, bytes]],
                  clients: int, requests: int) -> dict[str, Any]:
    """The server's requests/s (the median of `ROUNDS` rounds) and latency percentiles (ms, over every round's
    requests) under `clients` concurrent clients of `requests` requests each."""
    rates, latencies = [], []
    with running_server(model_file, *options) as url:
        with httpx.Client() as warm:
            for name, data in photos[:WARMUP_REQUESTS]:
                warm.post(f"{url}/predict", files={FIELD: (name, data)})
        for _ in range(ROUNDS):
            wall, times = _round(url, photos, clients, requests, label)
            rates.append(len(times) / wall)
            latencies += times
    milliseconds = np.array(latencies) * 1000
    return {
        "server": label,
        "requests_per_s": statistics.median(rates),
        "p50_ms": float(np.percentile(milliseconds, 50)),
        "p99_ms": float(np.percentile(milliseconds, 99)),
    }


def _round(url: str, photos: list[tuple[str, bytes]], clients: int, requests: int, label: str) -> tuple[float, list]:
    """One round of load: its wall time and each request's latency (s); a failed request is a PipelineError."""
    latencies: list[float] = []
    failures: list[str] = []
    gate = threading.Barrier(clients + 1)

    def client(index: int) -> None:
        with httpx.Client(timeout=120) as session:
            gate.wait()
            for request in range(requests):
                name, data = photos[(index * requests + request) % len(photos)]
                start = time.perf_counter()
                response = session.post(f"{url}/predict", files={FIELD: (name, data)})
                latencies.append(time.perf_counter() - start)  # list.append is atomic
                if response.status_code != 200:
                    failures.append(f"{name}: {response.status_code} {response.text}")

    threads = [threading.Thread(target=client, args=(index,)) for index in range(clients)]
    for thread in threads:
        thread.start()
    gate.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    if failures:
        raise PipelineError(f"{label}: {len(failures)} requests failed, the first: {failures[0]}")
    return wall, latencies


def serving_bench_table(figures: dict[str, Any]) -> str:
    """The figures as two text tables, with what was skipped."""
    lines = [f"{figures['model']}: {figures['images']} generated photos, on the CPU", "",
             f"{'predict':<8} {'batch':>5} {'model images/s':>15} {'predict images/s':>17}"]
    lines += [
        f"{row['backend']:<8} {row['batch']:>5} {row['model_images_per_s']:>15,.0f} {row['predict_images_per_s']:>17,.0f}"
        for row in figures["predict"]
    ]
    lines += [f"skipped {note}" for note in figures["skipped"]]
    lines += ["", f"server, {figures['clients']} clients x {figures['requests']} requests of one image",
              f"{'':<38} {'requests/s':>10} {'p50 ms':>8} {'p99 ms':>8}"]
    lines += [
        f"{row['server']:<38} {row['requests_per_s']:>10,.0f} {row['p50_ms']:>8.1f} {row['p99_ms']:>8.1f}"
        for row in figures["server"]
    ]
    return "\n".join(lines)
