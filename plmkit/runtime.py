"""What every stage needs from its surroundings: errors for the user, atomic writes, devices, seeds.

`UserError` marks a mistake in the user's input (a missing file, a bad column): the CLI
prints its message on one line and exits 2, with no traceback. Writes go through a temporary
name and a rename, so a crash never leaves a half-written file or directory behind; the cost
is briefly needing room for two copies of whatever is being replaced.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch


class UserError(Exception):
    """A mistake in the user's input; the message names the file, line or field."""


# ----------------------------------------------------------------------------- atomic writes


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Text version of `atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary directory that replaces `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ----------------------------------------------------------------------------- devices and seeds


def pick_device(name: str = "auto") -> torch.device:
    """`auto` picks CUDA when present, else CPU; an explicit CUDA request without CUDA is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device '{name}' requested but CUDA is not available here")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device '{name}' (use auto, cpu, cuda or cuda:N)") from None


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype for a precision setting, or None for plain fp32."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    raise UserError(f"precision '{precision}': use auto, fp32 or bf16")


def compile_step(
    fn: Callable[..., Any], backend: Any = "inductor", dynamic: bool | None = None
) -> Callable[..., Any]:
    """`torch.compile(fn)` (a model, or a model's forward and loss together), with
    data-dependent sizes traced instead of splitting the graph.

    The unpadded encoder (models/unpad.py) finds its N real tokens with `nonzero`, whose output
    size depends on the data; by default Dynamo breaks the graph there, and the layers after it
    compile as separate graphs. Tracing it keeps one graph whose N is symbolic, so batches of
    any length reuse it (tests/models/test_compile.py counts the graphs). The setting applies
    to this function's calls only: other compiled code in the process keeps Dynamo's defaults.
    `dynamic` is torch.compile's (True: every size symbolic from the start).
    """
    compiled = torch.compile(fn, backend=backend, dynamic=dynamic)

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        with torch._dynamo.config.patch(
            capture_dynamic_output_shape_ops=True, capture_scalar_outputs=True
        ):
            return compiled(*args, **kwargs)

    return call


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------- processes


def rank() -> int:
    """This process's global rank under torchrun (0 when run alone)."""
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """Number of processes under torchrun (1 when run alone)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """True on the process that logs and writes files."""
    return rank() == 0


def progress_interval() -> float:
    """Seconds between progress-bar redraws: often on a terminal; in a log file (CI, nohup,
    a device command's output) a line every 30 s is plenty."""
    return 0.5 if sys.stderr.isatty() else 30.0


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


def print0(*args: object, **kwargs: object) -> None:
    """`print` on rank 0 only, flushed so logs interleave sensibly."""
    if is_main_process():
        print(*args, **kwargs, flush=True)  # type: ignore[call-overload]
