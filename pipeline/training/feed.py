"""Training batches: the training split, shuffled and augmented anew each epoch, in one process's share.

Every epoch's order comes from a `DistributedSampler` seeded with the run's seed and set to the epoch, so a run of
N processes (`torchrun`) trains on exactly the global batches one process would, each process on every N-th image
of them. Every batch is augmented from its own seed (run seed, epoch, process, batch number), so the batches do
not depend on which worker process made them, and a resumed run repeats an epoch exactly. The `DataLoader` draws
its workers' base seed from a generator of its own, not from torch's global one, which the training loop reseeds
every epoch for dropout: that draw comes every epoch without workers but only in a process's first epoch with
persistent ones, so a resumed epoch, or a run with another `train.workers`, would get other dropout masks.

Two feeds yield the same kind of batch, uint8 images (or float table rows) with int64 labels, on the device:
- host (default): the split stays in host memory, memory-mapped (only the pages that batches touch are read); a
  `DataLoader` gathers and augments each batch, in worker processes where they pay (`train.workers`), into pinned
  memory for an asynchronous copy to the GPU;
- device (`train.data_on_device`): the whole split is copied to the training device once; each epoch's images are
  gathered and augmented there at once, then cut into batches.
Crops, shifts and flips are always batched tensor ops (`pipeline.training.batch_augment`), with no per-image Python
work; the other transforms (rotation, zoom, shear, brightness, contrast, policy, erasing) follow image by image on the
host (`pipeline.training.augment`), from a seed of their own, so they never change the moves' draws.
"""

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torch.utils.data.distributed import DistributedSampler

from pipeline.config.params import ModelConfig
from pipeline.config.training import AugParams
from pipeline.core.distributed import Shard
from pipeline.core.errors import PipelineError
from pipeline.core.runtime import batch_count, derived_seed
from pipeline.data.store import SplitArrays
from pipeline.training.augment import PerImageTransforms, per_image_augment
from pipeline.training.batch_augment import BatchedPixelMoves

Batch = tuple[torch.Tensor, torch.Tensor]
# (uint8 NHWC batch, seed, which images to mirror or None) -> the batch augmented
BatchTransform = Callable[[torch.Tensor, int, torch.Tensor | None], torch.Tensor]
MAX_AUTO_WORKERS = 4
FLIP_DRAW = 2  # the part of `derived_seed` that draws alternating flips, apart from any epoch's


class EpochBatches(Sampler):
    """One process's batches of sample indices for the current epoch, each with the seed of its augmentation and,
    with `alternate_flips`, which of its images to mirror; only the first `limit` of them when a limit is set
    (`train.steps_per_epoch`: each epoch then trains on that many batches of its own shuffled order, as Keras'
    `steps_per_epoch` and Lightning's `limit_train_batches` do).

    Alternating flips (`aug.hflip: alternate`, airbench's): half the images, drawn once from the seed, are mirrored
    in odd epochs and the others in even epochs, so every image is seen both ways every two epochs."""

    def __init__(
        self, samples: int, batch_size: int, seed: int, shard: Shard, limit: int | None = None,
        alternate_flips: bool = False,
    ) -> None:
        if batch_size % shard.world:
            raise PipelineError(
                f"train.batch_size: {batch_size} images per step do not split evenly between {shard.world} "
                "processes; make it a multiple of the process count"
            )
        self.order = DistributedSampler(range(samples), num_replicas=shard.world, rank=shard.rank, seed=seed)
        self.per_process, self.seed, self.rank, self.epoch = batch_size // shard.world, seed, shard.rank, 0
        self.samples, self.world, self.limit = samples, shard.world, limit
        self.first_flips = _half_of(samples, derived_seed(seed, FLIP_DRAW)) if alternate_flips else None

    def set_epoch(self, epoch: int) -> None:
        """Draw this epoch's order and augmentation (from the seed and the epoch alone)."""
        self.order.set_epoch(epoch)
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[int, list[int], torch.Tensor | None]]:
        order = list(self.order)
        for number, start in enumerate(self._starts()):
            index = order[start : start + self.per_process]
            yield derived_seed(self.seed, self.epoch, self.rank, number), index, self._flips(index)

    def _flips(self, index: list[int]) -> torch.Tensor | None:
        """Which of these images this epoch mirrors, with alternating flips: the first draw in odd epochs, the
        others in even ones; None without."""
        if self.first_flips is None:
            return None
        return self.first_flips[index] ^ (self.epoch % 2 == 0)

    def __len__(self) -> int:
        whole = batch_count(len(self.order), self.per_process)
        return whole if self.limit is None else min(whole, self.limit)

    def batch_sizes(self) -> list[int]:
        """The size of each of this process's batches of an epoch (padding included)."""
        return [min(self.per_process, len(self.order) - start) for start in self._starts()]

    def real_counts(self) -> list[int]:
        """How many images of each of this process's batches are real, not padding: the sampler pads the epoch's
        order with repeats to a multiple of the process count, at the end, so this process's image `i` is padding
        when `rank + i * world` is past the split."""
        real = len(range(self.rank, self.samples, self.world))
        return [max(0, min(self.per_process, real - start)) for start in self._starts()]

    def _starts(self) -> range:
        """Where each of the epoch's batches starts in this process's order, the first `limit` of them."""
        return range(0, len(self.order), self.per_process)[: len(self)]


def _half_of(samples: int, seed: int) -> torch.Tensor:
    """A bool per sample, true for about half of them, drawn from `seed`."""
    return torch.rand(samples, generator=torch.Generator().manual_seed(seed)) < 0.5


@dataclass(frozen=True)
class ChainedAugment:
    """The batched pixel moves, then the per-image transforms on top: the moves are drawn from the batch seed alike
    whatever else is on, so a sweep over a per-image key leaves every crop, shift and flip as it was."""

    moves: BatchedPixelMoves | None
    per_image: PerImageTransforms | None

    def __call__(self, images: torch.Tensor, seed: int, flips: torch.Tensor | None = None) -> torch.Tensor:
        """The batch augmented; the same seed (and flips) give the same batch."""
        if self.moves is not None:
            images = self.moves(images, seed, flips)
        return self.per_image(images, seed) if self.per_image is not None else images


def batch_augmenter(aug: AugParams) -> BatchTransform | None:
    """How training batches are augmented (None: not at all). Crop, shift and flips are always batched tensor ops;
    the other transforms, when on, follow image by image on the host."""
    moves = BatchedPixelMoves(aug) if aug.crop_padding or aug.hflip or aug.vflip or (aug.shift and aug.p) else None
    per_image = per_image_augment(aug)
    if per_image is None:
        return moves
    return ChainedAugment(moves, per_image)


def augmented_samples(aug: AugParams, seed: int, images: np.ndarray, draws: int) -> np.ndarray:
    """`draws` versions of each image (uint8 NHWC) as (N, draws, H, W, C), drawn as training draws them; copies
    when all is off."""
    augment = batch_augmenter(aug)
    if augment is None:
        return np.repeat(images[:, None], draws, axis=1)
    batch = torch.from_numpy(np.array(images))  # owned: `images` may be a read-only, memory-mapped slice
    return torch.stack([augment(batch, seed + draw) for draw in range(draws)], dim=1).numpy()


class _HostBatches(Dataset):
    """Batches gathered from the split in host memory and augmented there."""

    def __init__(self, split: SplitArrays, augment: BatchTransform | None) -> None:
        self.split, self.augment = split, augment

    def __getitem__(self, item: tuple[int, list[int], torch.Tensor | None]) -> Batch:
        seed, index, flips = item
        inputs, labels = torch.from_numpy(self.split.inputs[index]), torch.from_numpy(self.split.labels[index])
        return _augmented(self.augment, inputs, seed, flips), labels


def _augmented(
    augment: BatchTransform | None, inputs: torch.Tensor, seed: int, flips: torch.Tensor | None
) -> torch.Tensor:
    return inputs if augment is None else augment(inputs, seed, flips)


class TrainFeed:
    """The training batches of one run, epoch by epoch, delivered on the training device."""

    def __init__(
        self, split: SplitArrays, config: ModelConfig, seed: int, device: torch.device, shard: Shard = Shard()
    ) -> None:
        train_params = config.train
        images = split.inputs.ndim == 4  # a table's rows are not augmented
        self.augment = batch_augmenter(config.aug) if images else None
        self.device = device
        self.examples = split.inputs[: train_params.batch_size]
        self.sampler = EpochBatches(
            len(split.labels), train_params.batch_size, seed, shard, train_params.steps_per_epoch,
            alternate_flips=images and config.aug.hflip == "alternate",
        )
        self.on_device = train_params.data_on_device  # params allow it only with batched transforms
        if self.on_device:
            self.inputs = torch.tensor(split.inputs, device=device)  # a copy: the split is memory-mapped, read-only
            self.labels = torch.tensor(split.labels, device=device)
        else:
            workers = worker_count(train_params.workers, device)
            self.loader = DataLoader(
                _HostBatches(split, self.augment), sampler=self.sampler, batch_size=None,
                num_workers=workers, pin_memory=device.type == "cuda", persistent_workers=workers > 0,
                generator=torch.Generator().manual_seed(derived_seed(seed, shard.rank)),
            )

    def __len__(self) -> int:
        return len(self.sampler)

    def real_counts(self) -> list[int]:
        """The real (not padding) images in each of this process's batches of an epoch."""
        return self.sampler.real_counts()

    def shaped_examples(self) -> list[torch.Tensor]:
        """One batch of the split's first images, on the device, for each size an epoch's batches have (the full
        batch, and a shorter last one): what `train.compile` compiles for."""
        sizes = sorted(set(self.sampler.batch_sizes()), reverse=True)
        return [torch.as_tensor(self.examples[:size]).to(self.device) for size in sizes]

    def epoch(self, epoch: int) -> Iterator[Batch]:
        """The epoch's batches, as (uint8 NHWC images or float rows, int64 labels) on the device."""
        self.sampler.set_epoch(epoch)
        if self.on_device:
            yield from self._device_batches()
            return
        for inputs, labels in self.loader:
            yield inputs.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)

    def _device_batches(self) -> Iterator[Batch]:
        """The epoch's images gathered and augmented at once on the device, from the first batch's seed (a few
        kernels an epoch, not a few a batch, which a GPU would wait on), then cut into the batches."""
        plan = list(self.sampler)
        if not plan:
            return
        picked = torch.as_tensor([i for _, index, _ in plan for i in index], device=self.device)
        flips = None if plan[0][2] is None else torch.cat([flipped for _, _, flipped in plan])
        images, labels = _augmented(self.augment, self.inputs[picked], plan[0][0], flips), self.labels[picked]
        sizes = [len(index) for _, index, _ in plan]
        yield from zip(images.split(sizes), labels.split(sizes), strict=True)


def worker_count(setting: int | str, device: torch.device) -> int:
    """`train.workers`: `auto` is none on the CPU, where training already uses every core and a worker would only
    take cores from it, and up to 4 (one core left free) feeding a GPU."""
    if setting != "auto":
        return int(setting)
    if device.type == "cpu":
        return 0
    return max(0, min(MAX_AUTO_WORKERS, (os.cpu_count() or 1) - 1))
