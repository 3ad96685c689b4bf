import numpy as np
import pytest
import torch

from pipeline.errors import PipelineError
from pipeline.runtime import Normalization, batch_count, batches, pick_device, to_tensor


def _indexed(count: int, channels: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Images whose every pixel holds the sample's index, and labels equal to that index."""
    images = np.broadcast_to(np.arange(count, dtype=np.uint8)[:, None, None, None], (count, 4, 6, channels)).copy()
    return images, np.arange(count, dtype=np.int64)


def _order(generator: torch.Generator | None, count: int = 10, batch_size: int = 4) -> list[int]:
    images, labels = _indexed(count)
    return [int(label) for _, batch in batches(images, labels, batch_size, generator=generator) for label in batch]


@pytest.mark.parametrize("shuffle", [False, True], ids=["in_order", "shuffled"])
def test_every_sample_appears_exactly_once_with_its_label(shuffle):
    images, labels = _indexed(10)
    generator = torch.Generator().manual_seed(0) if shuffle else None
    seen = []
    for x, y in batches(images, labels, 4, generator=generator):
        assert torch.equal(torch.round(x[:, 0, 0, 0] * 255).long(), y)
        seen += y.tolist()
    assert sorted(seen) == list(range(10))


def test_without_a_generator_batches_keep_the_input_order():
    assert _order(None) == list(range(10))


def test_a_generator_shuffles_and_the_same_seed_gives_the_same_order():
    first = _order(torch.Generator().manual_seed(5))
    assert first == _order(torch.Generator().manual_seed(5))
    assert first != list(range(10))
    assert first != _order(torch.Generator().manual_seed(6))


def test_one_generator_gives_a_new_order_each_epoch():
    generator = torch.Generator().manual_seed(5)
    assert _order(generator) != _order(generator)


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


def test_augment_is_applied_per_image_and_a_dropped_channel_axis_is_restored():
    images, labels = _indexed(3)
    calls = []

    def augment(image):
        calls.append(image.shape)
        return {"image": 255 - image[..., 0]}

    (x, _), *_ = list(batches(images, labels, 3, augment=augment))
    assert calls == [(4, 6, 1)] * 3
    assert x.shape == (3, 1, 4, 6)
    assert torch.allclose(x[:, 0, 0, 0], (255 - torch.arange(3)) / 255)


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


def test_normalization_is_taken_from_meta_only_when_asked():
    meta = {"mean": [0.5], "std": [0.25], "normalize": True}
    assert Normalization.from_meta(meta) == Normalization(mean=(0.5,), std=(0.25,))
    assert Normalization.from_meta({**meta, "normalize": False}) is None
