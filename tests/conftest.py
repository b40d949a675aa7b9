"""Shared test fixtures: paths to ../shared/data, a small thread budget for 2-core machines, and
the kill -9 and resume check every training verb passes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, present on developer machines and in CI."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"{SHARED_DATA} is missing: the tests read real data from ../shared/data")
    return SHARED_DATA


def _kill_then_resume(start: Callable[..., subprocess.Popen], tmp_path: Path, step: int,
                      parts: Sequence[str] = ("model.safetensors",)) -> None:
    """`start(output, *extra)` runs one training job: once whole, once SIGKILLed when its
    checkpoint step-`step` appears and then resumed; the two final models must be bit-identical."""
    whole = start(tmp_path / "whole")
    killed = start(tmp_path / "killed")
    checkpoint = tmp_path / "killed" / "checkpoints" / f"step-{step}"
    deadline = time.monotonic() + 120
    while not checkpoint.exists():
        assert killed.poll() is None, killed.stderr.read().decode()
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert not (tmp_path / "killed" / "final").exists(), "the run finished before it was killed"
    resumed = start(tmp_path / "killed", "resume=true")
    for proc in (whole, resumed):
        assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()
    for part in parts:
        a = load_file(tmp_path / "whole" / "final" / part)
        b = load_file(tmp_path / "killed" / "final" / part)
        assert a.keys() == b.keys()
        different = [k for k in a if not (a[k] == b[k]).all()]
        assert not different, f"{part}: weights differ after resume: {different[:5]}"


@pytest.fixture
def kill_then_resume() -> Callable[..., None]:
    """The check above, as a fixture: kill_then_resume(start, tmp_path, step[, parts])."""
    return _kill_then_resume
