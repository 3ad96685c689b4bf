"""Augmentation of whole batches with tensor ops, wherever the batch is: on the host, or on the GPU for a split
kept there (`train.data_on_device`).

The fastest published CIFAR-10 trainers keep the data on the GPU and flip, crop and translate whole batches with a
few tensor ops instead of image by image. This does the same for the `aug.*` keys that are pixel moves:
`crop_padding` (zero padding, then a random window), `shift` (translate by whole pixels within +-shift of the side
with the edge pixels repeated, with probability `p`) and the flips (`hflip: alternate`: airbench's derandomised flips,
each image's flip given by the feed). Every output pixel is one gather from the batch,
so a batch costs one indexing call whatever the transforms. Every run does its moves here, with the same draws,
whatever other `aug.*` key is on (those follow image by image: `pipeline.training.augment`).
"""

from dataclasses import dataclass

import torch

from pipeline.config.training import AugParams


@dataclass(frozen=True)
class BatchedPixelMoves:
    """Per-image random flips, padded crops and translations of uint8 NHWC batches, drawn from a seed."""

    aug: AugParams

    def __call__(self, images: torch.Tensor, seed: int, flips: torch.Tensor | None = None) -> torch.Tensor:
        """The batch with each image moved by its own random draw; the same seed gives the same batch. `flips`
        (bool per image) says which images to mirror left-right, for `hflip: alternate`; without it they are drawn
        with probability `hflip` (one half for `alternate`)."""
        count, height, width = images.shape[:3]
        generator = torch.Generator(images.device).manual_seed(seed)

        def draw(low: int, high: int) -> torch.Tensor:
            return torch.randint(low, high + 1, (count, 1), generator=generator, device=images.device)

        def chance(probability: float) -> torch.Tensor:
            return torch.rand(count, 1, generator=generator, device=images.device) < probability

        aug, moved = self.aug, chance(self.aug.p)
        pad = aug.crop_padding
        rows = _source(height, chance(aug.vflip), draw(*_reach(aug.shift, height)) * moved, draw(0, 2 * pad) - pad)
        mirrored = chance(0.5 if aug.hflip == "alternate" else aug.hflip)  # drawn either way: the later draws stay
        if flips is not None:
            mirrored = flips.to(images.device).view(count, 1)
        cols = _source(width, mirrored, draw(*_reach(aug.shift, width)) * moved, draw(0, 2 * pad) - pad)
        inside = ((rows >= 0) & (rows < height))[:, :, None] & ((cols >= 0) & (cols < width))[:, None, :]
        picked = images[
            torch.arange(count, device=images.device)[:, None, None],
            rows.clamp(0, height - 1)[:, :, None],
            cols.clamp(0, width - 1)[:, None, :],
        ]
        return picked * inside[..., None].to(picked.dtype)


def _reach(shift: float, side: int) -> tuple[int, int]:
    """The range of whole-pixel translations for `aug.shift` on this side."""
    reach = int(shift * side)
    return -reach, reach


def _source(side: int, flipped: torch.Tensor, moves: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """For each image, the source index of every output row (or column): the crop, translation and flip undone in
    reverse order. An index outside the image reads the crop's zero padding; the translation repeats the edge."""
    index = torch.arange(side, device=flipped.device).expand(len(flipped), side)
    index = torch.where(flipped, side - 1 - index, index)
    index = (index - moves).clamp(0, side - 1)
    return index + offsets

