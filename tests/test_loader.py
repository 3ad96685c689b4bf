import hashlib

import numpy as np
import pytest
import torch

from pipeline.config.params import parse_params
from pipeline.config.training import AugParams
from pipeline.core.distributed import Shard
from pipeline.core.errors import PipelineError
from pipeline.data.store import SplitArrays
from pipeline.training.augment import per_image_augment
from pipeline.training.batch_augment import BatchedPixelMoves
from pipeline.training.feed import (
    ChainedAugment,
    EpochBatches,
    TrainFeed,
    augmented_samples,
    batch_augmenter,
    worker_count,
)
from tests.helpers.params import tiny_raw


def _indices(sampler: EpochBatches, epoch: int) -> list[list[int]]:
    sampler.set_epoch(epoch)
    return [index for _, index, _ in sampler]


def test_every_sample_is_in_exactly_one_batch_of_an_epoch():
    batches = _indices(EpochBatches(10, 4, seed=1, shard=Shard()), epoch=1)
    assert [len(index) for index in batches] == [4, 4, 2]
    assert sorted(sum(batches, [])) == list(range(10))


def test_the_order_is_the_same_for_the_same_seed_and_epoch_and_changes_with_either():
    first = _indices(EpochBatches(20, 4, seed=1, shard=Shard()), epoch=1)
    assert first == _indices(EpochBatches(20, 4, seed=1, shard=Shard()), epoch=1)
    assert first != _indices(EpochBatches(20, 4, seed=1, shard=Shard()), epoch=2)
    assert first != _indices(EpochBatches(20, 4, seed=2, shard=Shard()), epoch=1)


def test_two_processes_share_out_exactly_the_global_batches_of_one():
    alone = _indices(EpochBatches(24, 8, seed=3, shard=Shard()), epoch=2)
    ranks = [_indices(EpochBatches(24, 8, seed=3, shard=Shard(rank, 2)), epoch=2) for rank in (0, 1)]
    assert all(len(index) == 4 for shard in ranks for index in shard)
    assert [sorted(a + b) for a, b in zip(*ranks, strict=True)] == [sorted(index) for index in alone]


def test_each_batch_has_its_own_augmentation_seed_fixed_by_seed_epoch_rank_and_number():
    sampler = EpochBatches(12, 4, seed=1, shard=Shard())
    sampler.set_epoch(1)
    seeds = [seed for seed, _, _ in sampler]
    assert len(set(seeds)) == 3
    sampler.set_epoch(1)
    assert seeds == [seed for seed, _, _ in sampler]
    other_rank = EpochBatches(12, 2, seed=1, shard=Shard(1, 2))
    other_rank.set_epoch(1)
    assert not set(seeds) & {seed for seed, _, _ in other_rank}


def test_a_step_limit_keeps_the_first_batches_of_each_epoch_s_own_order():
    whole = EpochBatches(20, 4, seed=1, shard=Shard())
    limited = EpochBatches(20, 4, seed=1, shard=Shard(), limit=2)
    assert len(whole) == 5 and len(limited) == 2 and limited.real_counts() == [4, 4]
    for epoch in (1, 2):
        assert _indices(limited, epoch) == _indices(whole, epoch)[:2]
    assert _indices(limited, 1) != _indices(limited, 2)
    assert _indices(EpochBatches(20, 4, seed=1, shard=Shard(), limit=9), 1) == _indices(whole, 1)


def test_a_step_limit_applies_to_every_process_alike():
    ranks = [EpochBatches(24, 8, seed=3, shard=Shard(rank, 2), limit=2) for rank in (0, 1)]
    alone = _indices(EpochBatches(24, 8, seed=3, shard=Shard(), limit=2), epoch=2)
    shares = [_indices(batches, epoch=2) for batches in ranks]
    assert [len(share) for share in shares] == [2, 2]
    assert [sorted(a + b) for a, b in zip(*shares, strict=True)] == [sorted(index) for index in alone]


def test_a_global_batch_that_does_not_split_evenly_names_the_key():
    with pytest.raises(PipelineError, match=r"train\.batch_size: 5 .* 2 processes"):
        EpochBatches(10, 5, seed=1, shard=Shard(0, 2))


def _split(count: int = 10) -> SplitArrays:
    rng = np.random.default_rng(0)
    return SplitArrays(rng.integers(0, 256, (count, 8, 8, 3), dtype=np.uint8), np.arange(count, dtype=np.int64))


def _config(aug: dict | None = None, **train):
    aug = {"crop_padding": 2, "hflip": 0.5} | (aug or {})
    raw = tiny_raw(**{f"aug.{k}": v for k, v in aug.items()}, **{f"train.{k}": v for k, v in train.items()})
    return parse_params(raw).model("catsdogs_cnn")


def _epoch(feed: TrainFeed, epoch: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(inputs.clone(), labels.clone()) for inputs, labels in feed.epoch(epoch)]


def test_the_host_feed_gives_uint8_images_and_their_labels_augmented_reproducibly():
    split = _split()
    batches = _epoch(TrainFeed(split, _config(), seed=1, device=torch.device("cpu")))
    assert [tuple(inputs.shape) for inputs, _ in batches] == [(4, 8, 8, 3), (4, 8, 8, 3), (2, 8, 8, 3)]
    assert all(inputs.dtype == torch.uint8 and labels.dtype == torch.int64 for inputs, labels in batches)
    assert sorted(torch.cat([labels for _, labels in batches]).tolist()) == list(range(10))
    assert any(not torch.equal(inputs, torch.from_numpy(split.inputs[labels.numpy()])) for inputs, labels in batches)
    again = _epoch(TrainFeed(split, _config(), seed=1, device=torch.device("cpu")))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(batches, again, strict=True))


@pytest.mark.parametrize("on_device", [False, True], ids=["host", "device"])
def test_train_steps_per_epoch_ends_each_epoch_after_that_many_batches(on_device):
    feed = TrainFeed(_split(), _config(steps_per_epoch=2, data_on_device=on_device), seed=1, device=torch.device("cpu"))
    assert len(feed) == 2 and feed.real_counts() == [4, 4]
    assert [len(labels) for _, labels in _epoch(feed)] == [4, 4]


@pytest.mark.parametrize("aug", [{}, {"policy": "trivialaugment", "erasing": 0.5}], ids=["moves", "per-image"])
def test_worker_processes_make_the_same_batches_as_the_main_process(aug):
    split = _split(16)
    alone = _epoch(TrainFeed(split, _config(aug, workers=0), seed=1, device=torch.device("cpu")), epoch=3)
    workers = _epoch(TrainFeed(split, _config(aug, workers=2), seed=1, device=torch.device("cpu")), epoch=3)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(alone, workers, strict=True))


def test_the_device_feed_keeps_the_order_and_draws_its_own_moves():
    split = _split()
    host = _epoch(TrainFeed(split, _config(), seed=1, device=torch.device("cpu")))
    device = _epoch(TrainFeed(split, _config(data_on_device=True), seed=1, device=torch.device("cpu")))
    assert [labels.tolist() for _, labels in host] == [labels.tolist() for _, labels in device]
    assert all(inputs.dtype == torch.uint8 and inputs.shape == (len(labels), 8, 8, 3) for inputs, labels in device)


def test_the_device_feed_augments_the_whole_epoch_at_once_reproducibly():
    split = _split(12)
    plain = _epoch(TrainFeed(split, _config({"crop_padding": 0, "hflip": 0}, data_on_device=True), seed=1,
                             device=torch.device("cpu")))
    assert [len(labels) for _, labels in plain] == [4, 4, 4]
    assert all(torch.equal(inputs, torch.from_numpy(split.inputs[labels.numpy()])) for inputs, labels in plain)
    moved = _epoch(TrainFeed(split, _config({"hflip": "alternate"}, data_on_device=True), seed=1,
                             device=torch.device("cpu")))
    again = _epoch(TrainFeed(split, _config({"hflip": "alternate"}, data_on_device=True), seed=1,
                             device=torch.device("cpu")))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(moved, again, strict=True))
    assert any(not torch.equal(a[0], b[0]) for a, b in zip(plain, moved, strict=True))


def test_table_rows_are_fed_as_they_are():
    rows = SplitArrays(np.arange(12, dtype=np.float32).reshape(6, 2), np.arange(6, dtype=np.int64))
    batches = _epoch(TrainFeed(rows, _config(), seed=1, device=torch.device("cpu")))
    for inputs, labels in batches:
        assert torch.equal(inputs, torch.from_numpy(rows.inputs[labels.numpy()]))


def test_auto_workers_are_none_on_the_cpu_and_some_for_a_gpu(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert worker_count("auto", torch.device("cpu")) == 0
    assert worker_count("auto", torch.device("cuda")) == 4
    assert worker_count(3, torch.device("cpu")) == 3


def test_pixel_moves_are_batched_and_other_transforms_follow_image_by_image():
    assert batch_augmenter(AugParams()) is None
    assert isinstance(batch_augmenter(AugParams(crop_padding=2, hflip=0.5, shift=0.1)), BatchedPixelMoves)
    assert batch_augmenter(AugParams(shift=0.1, p=0)) is None
    both = batch_augmenter(AugParams(hflip=0.5, rotation=10))
    assert isinstance(both, ChainedAugment) and both.moves == BatchedPixelMoves(AugParams(hflip=0.5, rotation=10))
    assert batch_augmenter(AugParams(policy="randaugment")).moves is None


def _batch(count: int = 16, side: int = 32) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(0).integers(0, 256, (count, side, side, 3), dtype=np.uint8))


def test_the_shipped_models_batches_are_those_of_the_code_before_the_one_path():
    # sha256 of the batch the code before per-image keys moved onto the batched moves (commit 0e6c7fc) made
    out = batch_augmenter(AugParams(crop_padding=4, hflip=0.5))(_batch(), seed=1234)
    assert hashlib.sha256(out.numpy().tobytes()).hexdigest() == (
        "b300731600ada8b707e041bdacc19e5d99d8146d0d1f324cf6cfa285ddde34ad"
    )


@pytest.mark.parametrize("key", ["brightness", "contrast", "erasing"])
def test_a_per_image_key_at_strength_near_zero_leaves_the_batch_as_it_is_off(key):
    # 1e-12: albumentations' brightness truncates its float32 table to uint8, so at 1e-9 some pixels lose a level
    moves = {"crop_padding": 4, "hflip": 0.5, "shift": 0.1, "p": 0.5}
    off = batch_augmenter(AugParams(**moves))(_batch(), seed=5)
    assert torch.equal(batch_augmenter(AugParams(**moves, **{key: 1e-12}))(_batch(), seed=5), off)


@pytest.mark.parametrize(
    "others",
    [{"brightness": 0.3}, {"contrast": 0.5}, {"rotation": 20, "zoom": 0.2}, {"policy": "trivialaugment", "erasing": 1}],
    ids=["brightness", "contrast", "affine", "policy"],
)
def test_the_moves_are_drawn_alike_whatever_else_is_on(others):
    moves = {"crop_padding": 4, "hflip": 0.5, "vflip": 0.5, "shift": 0.1}
    moved = BatchedPixelMoves(AugParams(**moves))(_batch(), seed=5)
    out = batch_augmenter(AugParams(**moves, **others))(_batch(), seed=5)
    assert not torch.equal(out, moved)
    assert torch.equal(out, per_image_augment(AugParams(**others))(moved, seed=5))


def test_per_image_transforms_leave_the_order_and_the_labels_alone():
    split, cpu = _split(), torch.device("cpu")
    moves = _epoch(TrainFeed(split, _config(), seed=1, device=cpu))
    policy = _epoch(TrainFeed(split, _config({"policy": "randaugment", "erasing": 0.5}), seed=1, device=cpu))
    assert [labels.tolist() for _, labels in policy] == [labels.tolist() for _, labels in moves]
    assert any(not torch.equal(a, b) for (a, _), (b, _) in zip(policy, moves, strict=True))


def _textured(count: int = 2) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (count, 16, 16, 1), dtype=np.uint8)


def test_augmented_samples_are_copies_when_all_is_off_and_seeded_otherwise():
    images = _textured()
    off = augmented_samples(AugParams(), 0, images, draws=3)
    assert off.shape == (2, 3, 16, 16, 1)
    assert all(np.array_equal(off[i, j], images[i]) for i in range(2) for j in range(3))
    for aug in (AugParams(rotation=30), AugParams(crop_padding=3), AugParams(policy="trivialaugment", erasing=0.5)):
        on = augmented_samples(aug, 0, images, draws=3)
        assert on.shape == off.shape and on.dtype == np.uint8
        assert np.array_equal(on, augmented_samples(aug, 0, images, draws=3))
        assert not np.array_equal(on[:, 0], on[:, 1])


def test_the_preview_draws_what_training_draws():
    images = _textured(3)
    versions = augmented_samples(AugParams(hflip=1), seed=1, images=images, draws=2)
    assert np.array_equal(versions[:, 1], images[:, :, ::-1])


def test_the_padding_that_evens_out_processes_is_not_counted_as_real():
    # 7 images, 2 processes, global batch 4: rank 1's last image repeats one of the epoch's first ones.
    ranks = [EpochBatches(7, 4, seed=0, shard=Shard(rank, 2)) for rank in (0, 1)]
    assert [batches.real_counts() for batches in ranks] == [[2, 2], [2, 1]]
    assert EpochBatches(7, 4, seed=0, shard=Shard()).real_counts() == [4, 3]
