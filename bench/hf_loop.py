"""The plain Transformers-side training loop that the parity benches (parity_ner.py, parity_qa.py) share.

It is what a user would write around a Transformers model without plmkit, with each setting
chosen to match plmkit's trainer (plmkit/train/trainer.py, plmkit/train/optim.py) exactly:
AdamW with decay on matrices only (biases and LayerNorm gains are the 1-D parameters), linear
warm-up from 0 then linear decay to 0 (`get_linear_schedule_with_warmup`; plmkit's schedule is
the same function of progress, so the two agree step for step whenever warm-up is a whole number
of steps), gradient clipping before each step, one shuffled permutation per epoch whose last
batch may be smaller, and dynamic padding (the caller's `collate`). What differs is only the
randomness: head initialisation, dropout masks and batch order come from torch's generator here
and from plmkit's own seeding there, so the two runs agree within noise, not bit for bit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn


def adamw(model: nn.Module, lr: float, weight_decay: float, eps: float) -> torch.optim.AdamW:
    """AdamW with weight decay on the matrices only (betas 0.9/0.999, plmkit's defaults)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=eps)


def steps_for(epochs: float, rows: int, batch_size: int) -> int:
    """Optimizer steps for `epochs` passes over `rows` (plmkit's `steps_for_epochs`)."""
    return max(1, math.ceil(epochs * rows / batch_size))


def batch_indices(rows: int, batch_size: int, steps: int, seed: int) -> Iterator[list[int]]:
    """`steps` batches of row indices: a fresh permutation per epoch, the last batch maybe short."""
    generator = torch.Generator().manual_seed(seed)
    done = 0
    while True:
        order = torch.randperm(rows, generator=generator).tolist()
        for start in range(0, rows, batch_size):
            if done == steps:
                return
            yield order[start : start + batch_size]
            done += 1


def train(
    model: nn.Module,
    rows: Sequence[Any],
    collate: Callable[[list[Any]], dict[str, torch.Tensor]],
    *,
    steps: int,
    batch_size: int,
    lr: float,
    warmup_fraction: float,
    weight_decay: float,
    eps: float,
    clip_norm: float,
    seed: int,
    log_every: int = 50,
) -> float:
    """Fine-tune `model` (its forward returns `.loss`) for `steps` steps; returns training seconds."""
    from transformers import get_linear_schedule_with_warmup

    optimizer = adamw(model, lr, weight_decay, eps)
    schedule = get_linear_schedule_with_warmup(optimizer, round(warmup_fraction * steps), steps)
    model.train()
    started = time.perf_counter()
    for step, indices in enumerate(batch_indices(len(rows), batch_size, steps, seed), start=1):
        loss = model(**collate([rows[i] for i in indices])).loss
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if log_every and (step % log_every == 0 or step == steps):
            print(f"transformers: step {step}/{steps} loss {loss.item():.4f}", flush=True)
    return time.perf_counter() - started
