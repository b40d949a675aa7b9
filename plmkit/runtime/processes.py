"""Where this process stands in a torchrun job: rank and world size, read from its environment.

Alone (no torchrun) every helper answers as rank 0 of 1, so stages call them unconditionally.
No torch here (the process group is runtime/group.py), so the CLI and the console of a
deployment without torch (the ONNX forms) can ask.
"""

from __future__ import annotations

import os


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
