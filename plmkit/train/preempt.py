"""Preemption: SIGTERM and SIGINT end a run at a step boundary, with a checkpoint.

SLURM, Kubernetes and spot instances send SIGTERM some seconds before they kill; Ctrl-C sends
SIGINT. While `StopSignals` is active either one only sets a flag; the trainer finishes the
optimizer step under way, writes a checkpoint, prints one line and exits with 128 + the signal
number, so at most the step in flight is lost. A second signal gets the handler that was there
before (the default one kills at once), so a user who insists still can. Handlers can only be
set from the main thread: elsewhere (a notebook's worker thread) the signals keep theirs.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """A context in which SIGTERM / SIGINT ask the loop to stop instead of killing it."""

    def __init__(self) -> None:
        self.signum: int | None = None  # the first signal received, once one arrives
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        """True once a stop signal arrived."""
        return self.signum is not None

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(
        self, kind: type | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._restore()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum
        self._restore()  # the next signal acts as it would have without us

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()
