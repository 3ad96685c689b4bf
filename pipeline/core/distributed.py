"""Training on several processes (one per GPU) with DistributedDataParallel, launched by `torchrun`.

`pipeline train MODEL --nproc N` starts `torchrun --standalone --nproc_per_node N -m pipeline train MODEL`; with
`--nnodes M --node-rank R --master ADDR:PORT` it starts the same on each of M machines, joined by torchrun's c10d
rendezvous at ADDR:PORT, which node 0 hosts. Each process finds its rank in the environment torchrun sets, trains
on its share of every global batch (`train.batch_size` is the global batch, split evenly) and averages gradients
with the others; one process alone writes metrics, checkpoints and the model: rank 0 on one machine, the first
process of node 0 across machines. NCCL joins the processes on GPUs, gloo on the CPU.
"""

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from pipeline.core.errors import PipelineError
from pipeline.core.sync_batchnorm import synchronised

# Set by `launch` for a run across machines: this machine's --node-rank, which torchrun's c10d rendezvous does not
# keep (it numbers the machines in an order of its own), but which says where the model is written.
NODE_RANK_ENV = "PIPELINE_NODE_RANK"


@dataclass(frozen=True)
class Shard:
    """This process's place among the processes of one training run: `rank` of `world`; across machines, also
    the --node-rank of its machine and its rank on that machine."""

    rank: int = 0
    world: int = 1
    node_rank: int | None = None
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """The one process that writes metrics, checkpoints and the model: rank 0 on one machine; across machines,
        the first process of node 0 (the machine whose DVC tracks the run)."""
        if self.node_rank is None:
            return self.rank == 0
        return self.node_rank == 0 and self.local_rank == 0


def current_shard() -> Shard:
    """This process's rank among those torchrun started; one process of one when run without torchrun."""
    node_rank = os.environ.get(NODE_RANK_ENV)
    return Shard(
        rank=int(os.environ.get("RANK", "0")),
        world=int(os.environ.get("WORLD_SIZE", "1")),
        node_rank=None if node_rank is None else int(node_rank),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


@contextlib.contextmanager
def process_group(shard: Shard, device: torch.device) -> Iterator[torch.device]:
    """Join the run's process group for the duration (nothing to join for one process); yields this process's
    device: under torchrun on GPUs, the GPU of its local rank."""
    if shard.world == 1:
        yield device
        return
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        writers = int(summed(torch.tensor([int(shard.is_main)], device=device)).item())
        if writers != 1:
            raise PipelineError(
                f"{writers} processes would write the model: give each machine its own --node-rank, 0 to --nnodes - 1"
            )
        yield device
    finally:
        dist.destroy_process_group()


def wrap(model: nn.Module, shard: Shard, device: torch.device) -> nn.Module:
    """The model as DistributedDataParallel when several processes train it, else as it is. Under DDP its
    BatchNorm layers normalise over the global batch (`sync_batchnorm`), as one process training alone would."""
    if shard.world == 1:
        return model
    return DistributedDataParallel(synchronised(model, device), device_ids=[device] if device.type == "cuda" else None)


def unwrapped(model: nn.Module) -> nn.Module:
    """The plain model inside a `torch.compile` module and a DistributedDataParallel wrapper, to evaluate and save."""
    model = getattr(model, "_orig_mod", model)  # torch.compile's OptimizedModule keeps the module it compiled
    return model.module if isinstance(model, DistributedDataParallel) else model


def summed(values: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over every process (itself when training alone)."""
    if dist.is_initialized():
        dist.all_reduce(values)
    return values


def gathered(values: torch.Tensor) -> torch.Tensor:
    """Every process's tensor of the same shape, concatenated in rank order (itself when training alone)."""
    if not dist.is_initialized():
        return values
    parts = [torch.empty_like(values) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, values.contiguous())
    return torch.cat(parts)


def same_everywhere(value: int, device: torch.device) -> bool:
    """Whether every process holds the same `value` (always, for a process alone)."""
    if not dist.is_initialized():
        return True
    values = gathered(torch.tensor([value], device=device))
    return bool((values == values[0]).all())


def gathered_uneven(values: torch.Tensor) -> torch.Tensor:
    """Every process's tensor, whose first dimensions may differ, concatenated in rank order (itself when alone)."""
    if not dist.is_initialized():
        return values
    sizes = gathered(torch.tensor([len(values)], device=values.device))
    padded = values.new_zeros((int(sizes.max()), *values.shape[1:]))
    padded[: len(values)] = values
    parts = gathered(padded).split(int(sizes.max()))
    return torch.cat([part[:size] for part, size in zip(parts, sizes.tolist(), strict=True)])


def my_share(samples: int, shard: Shard) -> slice:
    """This process's part of a split that every process scores (validation, the BatchNorm check): every
    `world`-th sample from its rank on, so that the parts together are the split, each sample once."""
    return slice(shard.rank, samples, shard.world)
