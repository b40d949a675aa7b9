"""One writer per run directory: a lock file naming the process that holds it.

`acquire` creates `RUN/.plmkit.lock` with O_EXCL (pid, host, start time) before a run writes
anything else; a second run is refused with one line naming the holder. A lock left by a
process that no longer exists on this host (kill -9, a crashed node restarted) is detected and
taken over, so a preempted run resumes without a manual step. The lock goes when the process
ends (atexit; SIGKILL leaves it, which the takeover handles). Choice and cost: a plain file, not
`flock`, so it also works on NFS-style shared disks where `flock` is unreliable; the price is
that a lock held from another host cannot be checked for liveness and is refused with a hint.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import socket
import time
from pathlib import Path

from plmkit.runtime.errors import UserError

LOCK = ".plmkit.lock"
_held: dict[Path, bool] = {}  # lock file → whether this process created its run directory


def process_alive(pid: int) -> bool:
    """True when `pid` is a live (not zombie) process on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):  # Linux: a killed child not yet reaped is a zombie
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    return True


def acquire(run_dir: str | Path) -> Path:
    """Take the lock of `run_dir` (created if needed) for this process; return the lock file."""
    run_dir = Path(run_dir)
    created = not run_dir.exists() or not any(run_dir.iterdir())
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
    for _ in range(5):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            holder = _holder(path)
            if holder is None:  # vanished, or another taker is halfway: look again
                time.sleep(0.05)
                continue
            if holder.get("pid") == mine["pid"] and holder.get("host") == mine["host"]:
                return _register(path, _held.get(path, created))
            _refuse_or_take_over(path, holder, run_dir)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(mine) + "\n")
        return _register(path, created)
    raise UserError(f"{path}: could not take the run lock (another run keeps taking it)")


def check_free(run_dir: str | Path) -> None:
    """Refuse, with one line naming the holder, a run directory another live process holds."""
    run_dir = Path(run_dir)
    holder = _holder(run_dir / LOCK)
    if holder is not None and holder.get("pid") != os.getpid():
        _refuse_if_held(run_dir / LOCK, holder, run_dir)


def release(run_dir: str | Path) -> None:
    """Give up this process's lock of `run_dir` (nothing happens when another process holds it).
    A directory this process created that holds nothing but plmkit's own dot-files (a run that
    stopped on a bad input before writing) is removed, so a failed start leaves nothing."""
    run_dir = Path(run_dir)
    path = run_dir / LOCK
    holder = _holder(path)
    if holder is None or holder.get("pid") != os.getpid():
        _held.pop(path, None)
        return
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    if _held.pop(path, False):
        with contextlib.suppress(OSError):
            leftovers = list(run_dir.iterdir())
            if all(p.name.startswith(".plmkit") and p.is_file() for p in leftovers):
                for p in leftovers:
                    p.unlink()
                run_dir.rmdir()


def _holder(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"pid": -1, "host": socket.gethostname()}  # torn by a kill mid-write: stale
    return data if isinstance(data, dict) else {"pid": -1, "host": socket.gethostname()}


def _refuse_or_take_over(path: Path, holder: dict, run_dir: Path) -> None:
    """Refuse when the holder may still run; otherwise move its stale lock out of the way."""
    _refuse_if_held(path, holder, run_dir)
    with contextlib.suppress(FileNotFoundError):  # one taker wins this rename; others retry
        os.replace(path, path.with_name(f"{LOCK}.stale-{os.getpid()}"))
        os.unlink(path.with_name(f"{LOCK}.stale-{os.getpid()}"))


def _refuse_if_held(path: Path, holder: dict, run_dir: Path) -> None:
    pid, host = holder.get("pid", -1), holder.get("host", "?")
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
    if host != socket.gethostname():
        raise UserError(
            f"{run_dir}: in use by pid {pid} on host {host} since {since}; if that "
            f"run is gone, delete {path}"
        )
    if process_alive(int(pid)):
        raise UserError(
            f"{run_dir}: in use by pid {pid} on {host} since {since}; wait for that "
            "run to end or choose another output"
        )


def _register(path: Path, created: bool) -> Path:
    _held[path] = created
    return path


def release_all() -> None:
    """Give up every lock this process holds (at exit, and when a stage stops on a UserError)."""
    for path in list(_held):
        release(path.parent)


atexit.register(release_all)
