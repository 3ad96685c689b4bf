from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pipeline.core.errors import PipelineError
from pipeline.core.runtime import (
    Normalization,
    batch_count,
    batches,
    mixed_precision,
    model_input,
    pick_device,
    to_tensor,
)


def _indexed(count: int, channels: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Images whose every pixel holds the sample's index, and labels equal to that index."""
    images = np.broadcast_to(np.arange(count, dtype=np.uint8)[:, None, None, None], (count, 4, 6, channels)).copy()
    return images, np.arange(count, dtype=np.int64)


def test_every_sample_appears_once_in_order_with_its_label():
    images, labels = _indexed(10)
    seen = []
    for x, y in batches(images, labels, 4):
        assert torch.equal(torch.round(x[:, 0, 0, 0] * 255).long(), y)
        seen += y.tolist()
    assert seen == list(range(10))


def test_batches_are_float_nchw_in_unit_range_and_int64_labels():
    images = np.full((5, 4, 6, 3), 255, np.uint8)
    images[0] = 0
    shapes = []
    for x, y in batches(images, np.zeros(5, np.int64), 2):
        assert x.dtype == torch.float32
        assert y.dtype == torch.int64
        assert x.min() >= 0 and x.max() <= 1
        shapes.append(tuple(x.shape))
    assert shapes == [(2, 3, 4, 6), (2, 3, 4, 6), (1, 3, 4, 6)]
    first, _ = next(batches(images, np.zeros(5, np.int64), 2))
    assert first[0].max() == 0 and first[1].min() == 1


@pytest.mark.parametrize(("samples", "batch_size", "count"), [(10, 4, 3), (8, 4, 2), (1, 32, 1), (0, 4, 0)])
def test_batch_count_matches_the_batches_yielded(samples, batch_size, count):
    images, labels = _indexed(samples)
    assert batch_count(samples, batch_size) == count == len(list(batches(images, labels, batch_size)))


@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_asking_for_cuda_without_it_names_the_key(monkeypatch, name):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(PipelineError, match=rf"train\.device: '{name}'.*CUDA is not available"):
        pick_device(name)


def test_the_cuda_error_names_the_key_it_was_given(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(PipelineError, match="^--device:"):
        pick_device("cuda", key="--device")


def test_auto_is_the_cpu_without_cuda_and_cuda_with_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("auto").type == "cuda"


def test_auto_is_the_cpu_on_this_machine():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert pick_device("auto") == torch.device("cpu")


def test_cpu_is_always_the_cpu():
    assert pick_device("cpu") == torch.device("cpu")


def test_normalization_standardises_each_channel():
    images = np.stack([np.full((2, 2), value, np.uint8) for value in (51, 102, 255)], axis=-1)[None]
    tensor = to_tensor(images, Normalization(mean=(0.2, 0.4, 0.5), std=(0.1, 0.2, 0.25)))
    assert tensor.shape == (1, 3, 2, 2)
    assert tensor[0, :, 0, 0].tolist() == pytest.approx([0.0, 0.0, 2.0], abs=1e-5)


def test_model_input_standardises_on_the_tensor_s_own_device_and_leaves_table_rows_unshared():
    rows = np.array([[3.0, 40.0]], np.float32)
    tensor = model_input(torch.from_numpy(rows), Normalization(mean=(2.0, 20.0), std=(1.0, 10.0)))
    assert tensor.tolist() == [[1.0, 2.0]]
    assert rows.tolist() == [[3.0, 40.0]]


def test_full_precision_off_cuda_whatever_is_asked():
    with mixed_precision(torch.device("cpu"), True):
        assert not torch.is_autocast_enabled()
        assert torch.ones(2, 2).mm(torch.ones(2, 2)).dtype == torch.float32


def test_normalization_is_taken_from_meta_only_when_asked():
    meta = SimpleNamespace(mean=[0.5], std=[0.25], normalize=True)
    assert Normalization.from_stats(meta) == Normalization(mean=(0.5,), std=(0.25,))
    assert Normalization.from_stats(SimpleNamespace(mean=[0.5], std=[0.25], normalize=False)) is None
