"""Writes that a crash never leaves half done.

Everything goes through a temporary name, an fsync (of the data and of the directory) and a
rename, so readers see the old file or the new one, never a part, even after a power cut; the
cost is briefly needing room for two copies of whatever is being replaced, and the fsyncs' time.
Directories are marked as plmkit's (runtime/outputs.py), so a replace never hits a user's own.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from plmkit.runtime.outputs import (
    check_replaceable,
    old_copy,
    recover_interrupted_replace,
    remove_leftovers,
    write_marker,
)


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
        fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Text version of `atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def fsync_tree(root: str | Path) -> None:
    """fsync every file and directory under `root` (and `root`), so a rename publishes whole data."""
    for folder, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(folder)


def fsync_dir(path: str | Path) -> None:
    """fsync a directory, so the names created or renamed in it survive a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_dir(path: str | Path, verb: str) -> Iterator[Path]:
    """Yield a fresh temporary directory, marked as `verb`'s output, that replaces `path` only if
    the block succeeds; `path` itself may be replaced only when it holds `verb`'s marker.

    The temporary directory and all it holds are fsync'd before the rename; the old `path` is
    kept (as `.NAME.old`) until the new one is in place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover_interrupted_replace(path)
    remove_leftovers(path.parent, path.name)
    # the pid in the name: a kill before the marker is written still names the owner
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}-",
                                suffix=".tmp"))
    try:
        write_marker(tmp, verb)
        yield tmp
        fsync_tree(tmp)
        check_replaceable(path, verb, replace=True, hint="")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = old_copy(path)
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
    os.replace(tmp, path)
    fsync_dir(path.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_json_lines(records: list[dict], output: str | Path | None) -> None:
    """One JSON object per line, into `output` atomically, or to stdout when it is None."""
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if output:
        atomic_write_text(output, lines)
    else:
        sys.stdout.write(lines)
