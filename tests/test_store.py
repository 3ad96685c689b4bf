"""The array store at scale: .npy files written row by row, channel statistics summed chunk by chunk, splits read
memory-mapped and fed to torch without a warning."""

import warnings

import numpy as np
import pytest
import torch

from pipeline.config.params import parse_params
from pipeline.core.runtime import to_tensor
from pipeline.data.store import ArrayWriter, ChannelStats, load_split
from pipeline.training.feed import TrainFeed, augmented_samples
from tests.helpers.params import tiny_raw


def _old_channel_stats(images: np.ndarray) -> dict[str, list[float]]:
    """What preprocess computed before, over the whole split in memory at once."""
    mean = images.mean(axis=(0, 1, 2), dtype=np.float64) / 255
    std = np.maximum(images.std(axis=(0, 1, 2), dtype=np.float64) / 255, 1e-6)
    return {"mean": mean.round(6).tolist(), "std": std.round(6).tolist()}


@pytest.mark.parametrize("rows", [7, 3, 0])
def test_a_written_array_is_byte_for_byte_what_np_save_writes(tmp_path, rows):
    """Written for a capacity of 7 rows, trimmed to the rows appended when some were skipped."""
    images = np.random.default_rng(0).integers(0, 256, (rows, 5, 5, 3), np.uint8)
    labels = np.arange(rows, dtype=np.int64) * 3
    with ArrayWriter(tmp_path / "inputs.npy", (5, 5, 3), np.uint8, 7) as inputs, ArrayWriter(
        tmp_path / "labels.npy", (), np.int64, 7
    ) as written_labels:
        for image, label in zip(images, labels, strict=True):
            inputs.append(image)
            written_labels.append(int(label))
    np.save(tmp_path / "saved_inputs.npy", images)
    np.save(tmp_path / "saved_labels.npy", labels)
    assert (tmp_path / "inputs.npy").read_bytes() == (tmp_path / "saved_inputs.npy").read_bytes()
    assert (tmp_path / "labels.npy").read_bytes() == (tmp_path / "saved_labels.npy").read_bytes()
    assert np.array_equal(np.load(tmp_path / "inputs.npy"), images)
    assert np.array_equal(np.load(tmp_path / "inputs.npy", mmap_mode="r"), images)
    assert np.array_equal(np.load(tmp_path / "labels.npy"), labels)


def test_a_header_for_millions_of_rows_has_the_length_of_one_for_a_few(tmp_path):
    """What lets the writer put the real row count in place of the capacity without moving the data."""
    with ArrayWriter(tmp_path / "many.npy", (128, 128, 3), np.uint8, 10**12) as writer:
        start = writer.file.tell()
    assert start % 64 == 0
    assert len(writer._header(3)) == start


@pytest.mark.parametrize(("shape", "chunk"), [((64, 16, 16, 3), 5), ((50, 9, 13, 1), 7), ((3, 32, 32, 3), 1)])
def test_channel_stats_summed_in_chunks_equal_the_whole_array_ones(shape, chunk):
    rng = np.random.default_rng(sum(shape))
    for images in (rng.integers(0, 256, shape, np.uint8), rng.integers(90, 110, shape, np.uint8)):
        stats = ChannelStats(shape[-1])
        for start in range(0, len(images), chunk):
            stats.add(images[start : start + chunk])
        assert stats.result() == _old_channel_stats(images)


def test_channel_stats_of_no_images_are_neutral():
    assert ChannelStats(3).result() == {"mean": [0.0] * 3, "std": [1.0] * 3}


def test_a_split_is_read_memory_mapped_and_read_only(prepared):
    train = load_split(prepared, "catsdogs", "train")
    assert isinstance(train.inputs, np.memmap)
    assert not train.inputs.flags.writeable
    assert train.labels.flags.writeable


def test_a_memory_mapped_split_reaches_torch_without_a_warning(prepared):
    train = load_split(prepared, "catsdogs", "train")
    configs = [
        parse_params(tiny_raw(**{"aug.hflip": 0.5, "train.data_on_device": on_device})).model("catsdogs_cnn")
        for on_device in (False, True)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(to_tensor(train.inputs[:4]), to_tensor(np.array(train.inputs[:4])))
        assert augmented_samples(configs[0].aug, 1, train.inputs[:2], 2).shape == (2, 2, 32, 32, 1)
        for config in configs:
            feed = TrainFeed(train, config, 1, torch.device("cpu"))
            seen = torch.cat([labels for _, labels in feed.epoch(1)])
            assert sorted(seen.tolist()) == sorted(train.labels.tolist())
