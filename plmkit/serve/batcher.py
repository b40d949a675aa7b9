"""Dynamic batching: concurrent requests' inputs → one model call, run off the event loop.

Each request submits its checked inputs as one entry and awaits a future. One worker task takes
the oldest entry, then keeps taking entries until the batch holds `max_batch` inputs or
`max_wait_ms` has passed since it began, splits the batch by group (generation requests with
different `max_new_tokens` cannot decode together), and runs each group in a one-thread
executor, so the event loop keeps accepting requests while the model computes and the model
never runs twice at once. `max_batch=1` turns batching off: every request is its own call.

The queue is bounded in inputs, not requests: past `queue_size` inputs waiting, `submit` raises
`QueueFull` at once (the server answers 503) instead of letting latency grow without end. If a
batch fails, each of its entries is run again alone, so one bad input fails only its own
request; the cost is the repeated work, paid only on failure.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

Runner = Callable[[Sequence[Any], Any], list[Any]]  # (values, group) → one result per value


class QueueFull(Exception):
    """More inputs are waiting than the queue holds."""


@dataclass
class _Entry:
    values: list[Any]
    group: Any
    future: asyncio.Future = field(repr=False)


class Batcher:
    """Collects inputs from concurrent requests into batches for `run`; start() inside a loop."""

    def __init__(self, run: Runner, max_batch: int = 32, max_wait_ms: float = 5.0,
                 queue_size: int = 256, executor: ThreadPoolExecutor | None = None) -> None:
        if max_batch < 1 or queue_size < 1 or max_wait_ms < 0:
            raise ValueError("max_batch and queue_size must be ≥ 1 and max_wait_ms ≥ 0")
        self.run, self.max_batch, self.max_wait = run, max_batch, max_wait_ms / 1000
        self.queue_size = queue_size
        self.executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self.waiting = 0  # inputs submitted and not yet taken into a batch
        self.batches = 0  # model calls made (for /health)
        self._queue: asyncio.Queue[_Entry] = asyncio.Queue()
        self._worker: asyncio.Task | None = None

    def start(self) -> None:
        """Start the worker task on the running loop."""
        self._worker = asyncio.get_running_loop().create_task(self._work())

    async def stop(self) -> None:
        """Stop the worker; requests still waiting are cancelled."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        while not self._queue.empty():
            self._queue.get_nowait().future.cancel()
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def submit(self, values: list[Any], group: Any = None) -> list[Any]:
        """The results for `values`, once a batch holding them has run; QueueFull when full."""
        if self.waiting + len(values) > self.queue_size:
            raise QueueFull(f"{self.waiting} inputs are waiting (queue_size {self.queue_size})")
        entry = _Entry(values, group, asyncio.get_running_loop().create_future())
        self.waiting += len(values)
        self._queue.put_nowait(entry)
        return await entry.future

    async def _work(self) -> None:
        while True:
            batch = await self._collect()
            groups: dict[Any, list[_Entry]] = {}
            for entry in batch:
                groups.setdefault(entry.group, []).append(entry)
            for group, entries in groups.items():
                await self._run(entries, group)

    async def _collect(self) -> list[_Entry]:
        batch = [await self._queue.get()]
        size = len(batch[0].values)
        deadline = time.monotonic() + self.max_wait
        while size < self.max_batch:
            timeout = deadline - time.monotonic()
            if timeout <= 0 and self._queue.empty():
                break
            try:
                entry = (self._queue.get_nowait() if not self._queue.empty()
                         else await asyncio.wait_for(self._queue.get(), timeout))
            except asyncio.TimeoutError:  # (TimeoutError from Python 3.11)
                break
            batch.append(entry)
            size += len(entry.values)
        self.waiting -= size
        return batch

    async def _run(self, entries: list[_Entry], group: Any) -> None:
        loop = asyncio.get_running_loop()
        values = [v for entry in entries for v in entry.values]
        self.batches += 1
        try:
            results = await loop.run_in_executor(self.executor, self.run, values, group)
        except Exception as err:
            if len(entries) == 1:
                _settle(entries[0].future, error=err)
                return
            for entry in entries:  # find the entry that failed; the others still get answers
                await self._run([entry], group)
            return
        start = 0
        for entry in entries:
            _settle(entry.future, result=results[start : start + len(entry.values)])
            start += len(entry.values)


def _settle(future: asyncio.Future, result: Any = None, error: BaseException | None = None) -> None:
    if future.done():  # the client went away and its request was cancelled
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
