"""The server's batcher: requests that wait while the model is busy are scored together, within `max_batch` images,
each getting its own rows back; `max_batch=1` scores one request at a time; `wait` gathers requests that arrive
close together; a model error reaches the requests of its batch and the batcher goes on; a stop scores every
request already queued."""

import asyncio
import threading

import numpy as np
import pytest

from pipeline.serving.batching import Batcher


class Model:
    """A backend whose probabilities are the images' first pixel, which records each call's batch size and holds
    its first call until released, so that requests queue up behind it."""

    def __init__(self, fail_on: int = 0) -> None:
        self.calls: list[int] = []
        self.release = threading.Event()
        self.fail_on = fail_on

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        self.calls.append(len(images))
        if len(self.calls) == 1:
            self.release.wait(10)
        if len(self.calls) == self.fail_on:
            raise RuntimeError("the model broke")
        return images.reshape(len(images), -1)[:, :1].astype(np.float32)


def _images(*values: int) -> np.ndarray:
    return np.array(values, np.uint8).reshape(-1, 1, 1, 1) * np.ones((1, 2, 2, 1), np.uint8)


async def _busy_then(model: Model, batcher: Batcher, requests: list[tuple[int, ...]]) -> list:
    """The first request occupies the model; `requests` queue behind it; then the model is let go. Every request's
    result (or exception), first request first."""
    batcher.start()
    first = asyncio.create_task(batcher.probabilities(_images(0)))
    await asyncio.sleep(0.05)
    rest = [asyncio.create_task(batcher.probabilities(_images(*values))) for values in requests]
    await asyncio.sleep(0.05)
    model.release.set()
    results = await asyncio.gather(first, *rest, return_exceptions=True)
    await batcher.stop()
    return results


@pytest.mark.parametrize(
    ("max_batch", "requests", "calls"),
    [
        (64, [(1,), (2, 3), (4,), (5, 6, 7), (8,)], [1, 8]),
        (4, [(1,), (2, 3), (4, 5, 6), (7,)], [1, 3, 4]),  # (4, 5, 6) does not fit: held, first in the next call
        (2, [(1, 2, 3), (4,)], [1, 3, 1]),  # a request over max_batch: scored alone
        (1, [(1,), (2,), (3,)], [1, 1, 1, 1]),  # no batching
    ],
)
def test_requests_waiting_for_the_model_are_scored_together_within_max_batch(max_batch, requests, calls):
    model = Model()
    results = asyncio.run(_busy_then(model, Batcher(model, max_batch), requests))
    assert model.calls == calls
    for values, result in zip([(0,), *requests], results, strict=True):
        assert result.ravel().tolist() == list(values)  # each request its own rows, in its order


def test_with_a_wait_requests_arriving_close_together_share_a_call_on_an_idle_model():
    model = Model()
    model.release.set()

    async def run() -> list:
        batcher = Batcher(model, 64, wait=0.3)
        batcher.start()
        tasks = []
        for value in range(5):
            tasks.append(asyncio.create_task(batcher.probabilities(_images(value))))
            await asyncio.sleep(0.01)
        results = await asyncio.gather(*tasks)
        await batcher.stop()
        return results

    results = asyncio.run(run())
    assert model.calls == [5]
    assert [result.ravel().tolist() for result in results] == [[value] for value in range(5)]


def test_a_model_error_reaches_the_requests_of_its_batch_and_the_batcher_goes_on():
    model = Model(fail_on=2)
    results = asyncio.run(_busy_then(model, Batcher(model, 2), [(1,), (2,), (3,)]))
    assert model.calls == [1, 2, 1]
    assert results[0].ravel().tolist() == [0] and results[3].ravel().tolist() == [3]
    assert all(isinstance(result, RuntimeError) for result in results[1:3])


def test_a_stop_scores_every_request_already_queued_before_it_ends():
    model = Model()

    async def run() -> list:
        batcher = Batcher(model, 64)
        batcher.start()
        requests = [asyncio.create_task(batcher.probabilities(_images(0)))]
        await asyncio.sleep(0.05)  # the first request in the model, held
        requests += [asyncio.create_task(batcher.probabilities(_images(value))) for value in range(1, 4)]
        await asyncio.sleep(0.05)  # the others queued behind it
        stopping = asyncio.create_task(batcher.stop())
        await asyncio.sleep(0.05)
        assert not stopping.done()
        model.release.set()
        await asyncio.wait_for(stopping, 10)
        return await asyncio.wait_for(asyncio.gather(*requests), 1)

    results = asyncio.run(run())
    assert model.calls == [1, 3]
    assert [result.ravel().tolist() for result in results] == [[value] for value in range(4)]
