"""Fixtures for the task tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture
def single_thread() -> Iterator[None]:
    """One intra-op thread for tiny training loops: on a busy 2-core machine two threads can
    wait on each other for most of a step (observed: 30 tiny steps in 0.1 s vs 5-14 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
