"""What the training loop needs when several processes train one model (torchrun, DDP).

Each process takes the GPU of its local rank, wraps the model in DistributedDataParallel, and
agrees with the others on every decision a local event could skew: a stop signal or a clock
reaches one rank first, and a timing probe differs between ranks. Alone, every helper is a
no-op that answers for one process, so the loop calls them unconditionally.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from plmkit.config import TrainConfig
from plmkit.runtime.devices import pick_device
from plmkit.runtime.processes import world_size

DDP = nn.parallel.DistributedDataParallel


def training_device(cfg: TrainConfig) -> torch.device:
    """The training device; under torchrun each process takes the GPU of its local rank."""
    device = pick_device(cfg.device)
    if world_size() > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return device


def wrap(model: nn.Module, device: torch.device) -> tuple[nn.Module, DDP | None]:
    """The module the loop trains: DDP-wrapped under torchrun."""
    if world_size() == 1:
        return model, None
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    ids = [device.index] if device.type == "cuda" else None
    # Unused parameters are normal here: the NSP head while NSP waits for full length,
    # BERT's pooler in an MLM-only run. Finding them costs a walk of the autograd graph.
    ddp = DDP(model, device_ids=ids, find_unused_parameters=True)
    return ddp, ddp


def gather(ddp: DDP | None, value: Any) -> list[Any]:
    """`value` from every rank, in rank order ([value] when alone)."""
    if ddp is None:
        return [value]
    out: list[Any] = [None] * world_size()
    torch.distributed.all_gather_object(out, value)
    return out


def agree_any(ddp: DDP | None, device: torch.device, *flags: bool) -> tuple[bool, ...]:
    """Each flag true on every rank when it is true on any (a signal or a clock reaches one rank)."""
    if ddp is None:
        return flags
    votes = torch.tensor([float(f) for f in flags], device=device)
    torch.distributed.all_reduce(votes, op=torch.distributed.ReduceOp.MAX)
    return tuple(bool(v) for v in votes.tolist())


def agree_min(device: torch.device, value: int) -> int:
    """The smallest `value` any rank holds (call under torchrun only)."""
    votes = torch.tensor([value], device=device)
    torch.distributed.all_reduce(votes, op=torch.distributed.ReduceOp.MIN)
    return int(votes.item())
