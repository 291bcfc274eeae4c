"""Which process this is and where it runs: torchrun's process group, the rank's device, and the
one cross-rank reduction the loop needs (the epoch's mean training loss).

The global-batch all-gather the loss needs lives in gather.py.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from clap_core.errors import ConfigError


@dataclass
class Runtime:
    """Where this process runs and which share of the data it sees."""

    device: torch.device
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def setup_runtime(device: str) -> Runtime:
    """Join the torchrun process group if launched by torchrun, and pick this rank's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device: '{device}' asked for but no CUDA device is available (use cpu or auto)")
    if device == "cuda":
        device = f"cuda:{local_rank}" if world > 1 else "cuda:0"
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if device.startswith("cuda"):
            torch.cuda.set_device(torch.device(device))
        dist.init_process_group(backend=backend)
    return Runtime(torch.device(device), rank, world, local_rank)


def teardown_runtime(rt: Runtime) -> None:
    if rt.distributed and dist.is_initialized():
        dist.destroy_process_group()


def mean_across_ranks(total: float, count: int, rt: Runtime) -> float:
    """`total / count` summed over every rank first (NaN when no rank saw a sample)."""
    if rt.distributed:
        both = torch.tensor([total, float(count)], dtype=torch.float64, device=rt.device)
        dist.all_reduce(both)
        total, count = both[0].item(), int(both[1].item())
    return total / count if count else float("nan")


def barrier(rt: Runtime) -> None:
    """Ranks wait for the main rank's checkpoint before the next epoch."""
    if rt.distributed:
        dist.barrier()
