"""The model behind the server: one thread runs it, and the images of requests that arrive while it is busy are
scored together, in one call.

Requests put their images on an asyncio queue and wait. A loop takes the first waiting request, then every other
one already queued (up to `max_batch` images; with `wait` > 0 it also waits that long for more), and runs the
backend on them all in its one thread. With a single client nothing waits: a request is scored as soon as the
model is free. Under load, the requests that queued up during one call make the next batch, so the model's fixed
cost per call is shared (docs/how-to/serve.md has the measurement). `max_batch=1` turns batching off: one request
at a time, as a lock around the model would do. `stop` scores every request already queued before it ends, so a
graceful stop of the server loses none.
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from pipeline.inference.backend import Backend
from pipeline.serving import MAX_BATCH

Job = tuple[np.ndarray, "asyncio.Future[np.ndarray]"]


class Batcher:
    """Scores the images of concurrent requests with `backend`, in batches of up to `max_batch` images (a request
    with more is scored alone: the backend splits it into its own batches)."""

    def __init__(self, backend: Backend, max_batch: int = MAX_BATCH, wait: float = 0.0) -> None:
        self.backend, self.max_batch, self.wait = backend, max_batch, wait
        self._queue: asyncio.Queue[Job] | None = None
        self._task: asyncio.Task | None = None
        self._held: Job | None = None  # a request that did not fit in the last batch: first in the next
        self._model = ThreadPoolExecutor(1, thread_name_prefix="model")

    def start(self) -> None:
        """Start taking requests (in the running event loop)."""
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._serve())

    async def stop(self) -> None:
        """Score every request already queued (a graceful stop answers them all), then stop the loop and the model's
        thread."""
        if self._task is not None:
            assert self._queue is not None
            await self._queue.join()
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._model.shutdown(wait=True)

    async def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities (N, classes) of uint8 images (N, size, size, channels), as `backend.probabilities`
        gives them, once the model has scored them in a batch with whatever else was waiting."""
        assert self._queue is not None, "Batcher.start() first"
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        await self._queue.put((images, future))
        return await future

    async def _serve(self) -> None:
        assert self._queue is not None
        while True:
            first, self._held = self._held or await self._queue.get(), None
            jobs = await self._collect(first)
            await self._score([job for job in jobs if not job[1].done()])  # a client gone: not scored
            for _ in jobs:
                self._queue.task_done()

    async def _score(self, jobs: list[Job]) -> None:
        """Run the model on the images of `jobs` in one call and give each request its rows (or the model's error)."""
        if not jobs:
            return
        images = np.concatenate([images for images, _ in jobs])
        try:
            scored = await asyncio.get_running_loop().run_in_executor(self._model, self.backend.probabilities, images)
        except Exception as exc:  # noqa: BLE001 - whatever it is, every request of the batch gets it
            for _, future in jobs:
                if not future.done():
                    future.set_exception(exc)
            return
        start = 0
        for part, future in jobs:
            if not future.done():
                future.set_result(scored[start : start + len(part)])
            start += len(part)

    async def _collect(self, first: Job) -> list[Job]:
        """`first` and the requests queued behind it, as long as they keep the batch within `max_batch` images (the
        one that does not fit is held for the next batch); with `wait`, those that arrive within `wait` seconds of
        the first too."""
        assert self._queue is not None
        jobs, count = [first], len(first[0])
        deadline = asyncio.get_running_loop().time() + self.wait
        while count < self.max_batch:
            try:
                if self.wait > 0:
                    remaining = deadline - asyncio.get_running_loop().time()
                    job = await asyncio.wait_for(self._queue.get(), max(remaining, 0))
                else:
                    job = self._queue.get_nowait()
            except (asyncio.QueueEmpty, TimeoutError):
                break
            if count + len(job[0]) > self.max_batch:
                self._held = job
                break
            jobs.append(job)
            count += len(job[0])
        return jobs
