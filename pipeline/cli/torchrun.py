"""`pipeline train MODEL --nproc N` (and `--nnodes`, `--node-rank`, `--master`): the train stage's command
(`python -m pipeline.stages.train`) under torchrun, one process per GPU on each machine (see
`pipeline.core.distributed` for what the processes do)."""

import os
import subprocess
import sys
from dataclasses import dataclass

import torch

from pipeline.core.distributed import NODE_RANK_ENV
from pipeline.core.errors import PipelineError

TRAIN_STAGE = "pipeline.stages.train"  # the module each torchrun process runs


@dataclass(frozen=True)
class Nodes:
    """Where a run's processes are: `nproc` on each of `nnodes` machines; this one is `node_rank`, and `master`
    (ADDR:PORT of node 0, reachable from every machine) is where they meet. One machine needs no master."""

    nproc: int = 1
    nnodes: int = 1
    node_rank: int = 0
    master: str | None = None

    def check(self) -> None:
        """Refuse, before anything starts, a layout torchrun could not join, naming the option to fix."""
        if not 0 <= self.node_rank < self.nnodes:
            raise PipelineError(
                f"--node-rank: {self.node_rank}, but --nnodes {self.nnodes} numbers the machines 0 to "
                f"{self.nnodes - 1}; give 0 to the machine at --master"
            )
        if self.nnodes == 1 and self.master is not None:
            raise PipelineError("--master: only for training across machines; add --nnodes N (N >= 2), or drop it")
        if self.nnodes == 1:
            return
        example = "e.g. --master 10.0.0.1:29500"
        if self.master is None:
            raise PipelineError(
                f"--nnodes {self.nnodes}: add --master ADDR:PORT, node 0's address and a free port there, the same "
                f"on every machine ({example})"
            )
        host, _, port = self.master.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise PipelineError(f"--master: {self.master!r} is not ADDR:PORT, node 0's address and a port ({example})")

    def torchrun_options(self, run_id: str) -> list[str]:
        """torchrun's options for this layout: `--standalone` on one machine; across machines, the c10d rendezvous
        at `master`, hosted by node 0 (torchrun itself ignores --node_rank under c10d and says so)."""
        if self.nnodes == 1:
            return ["--standalone", f"--nproc_per_node={self.nproc}"]
        return [
            f"--nnodes={self.nnodes}",
            f"--node_rank={self.node_rank}",
            f"--nproc_per_node={self.nproc}",
            "--rdzv_backend=c10d",
            f"--rdzv_endpoint={self.master}",
            f"--rdzv_id={run_id}",
            f"--rdzv_conf=is_host={int(self.node_rank == 0)}",
        ]


def launch(nodes: Nodes, arguments: list[str], run_id: str = "pipeline") -> int:
    """Run `python -m pipeline.stages.train <arguments>` under torchrun: `nodes.nproc` processes on this machine,
    joined with those the same command starts on the other machines (`run_id` must match there); returns torchrun's
    exit status."""
    nodes.check()
    if torch.cuda.is_available() and nodes.nproc > torch.cuda.device_count():
        raise PipelineError(f"--nproc: {nodes.nproc} processes, but this machine has {torch.cuda.device_count()} GPUs")
    env = dict(os.environ)
    if nodes.nnodes > 1:
        env[NODE_RANK_ENV] = str(nodes.node_rank)
    command = [sys.executable, "-m", "torch.distributed.run", *nodes.torchrun_options(run_id)]
    return subprocess.run([*command, "-m", TRAIN_STAGE, *arguments], env=env, check=False).returncode
