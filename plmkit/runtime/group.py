"""The torchrun process group: joining it and waiting for every rank.

Alone (no torchrun) both are no-ops, so stages call them unconditionally.
"""

from __future__ import annotations

import os

import torch

from plmkit.runtime.devices import pick_device
from plmkit.runtime.processes import world_size


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
