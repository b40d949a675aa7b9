"""Where this process stands in a torchrun job: rank, world size, the process group.

Alone (no torchrun) every helper answers as rank 0 of 1, so stages call them unconditionally.
"""

from __future__ import annotations

import os

import torch

from plmkit.runtime.devices import pick_device


def rank() -> int:
    """This process's global rank under torchrun (0 when run alone)."""
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """Number of processes under torchrun (1 when run alone)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """True on the process that logs and writes files."""
    return rank() == 0


def data_seed(seed: int) -> int | list[int]:
    """The seed this process draws training data with: `seed` alone (or on rank 0), [seed, rank]
    on the other ranks of a torchrun job, so each rank trains on batches of its own."""
    return seed if rank() == 0 else [seed, rank()]


def start_processes(device_name: str) -> None:
    """Join the torchrun job's process group (NCCL on GPUs, gloo on CPUs); alone, nothing."""
    if world_size() > 1 and not torch.distributed.is_initialized():
        cuda = pick_device(device_name).type == "cuda"
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        torch.distributed.init_process_group("nccl" if cuda else "gloo")


def barrier() -> None:
    """Wait for every rank (a no-op when alone)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
