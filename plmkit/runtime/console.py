"""What a run prints: once per job (rank 0), and progress bars paced for terminals or logs."""

from __future__ import annotations

import sys

from plmkit.runtime.processes import is_main_process


def print0(*args: object, **kwargs: object) -> None:
    """`print` on rank 0 only, flushed so logs interleave sensibly."""
    if is_main_process():
        print(*args, **kwargs, flush=True)  # type: ignore[call-overload]


def progress_interval() -> float:
    """Seconds between progress-bar redraws: often on a terminal; in a log file (CI, nohup,
    a device command's output) a line every 30 s is plenty."""
    return 0.5 if sys.stderr.isatty() else 30.0
