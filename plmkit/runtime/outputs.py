"""Output directories that never destroy what plmkit did not write.

Every directory plmkit creates as an output holds a small marker, `.plmkit.json`, naming the
verb that wrote it. Before a stage does any work, `claim_output` decides whether its output
may be used: a missing or empty directory always may; one holding the marker of the same verb
may be replaced only when the user said so (`overwrite=true`, or `resume=true` for training);
anything else, and any output equal to, inside or containing one of the stage's inputs, is
refused with one line. The cost is that a directory written by an older plmkit (no marker) or
by hand must be moved or removed by the user before plmkit writes there again.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from collections.abc import Iterable
from pathlib import Path

from plmkit.runtime.errors import UserError
from plmkit.runtime.lock import LOCK, process_alive

MARKER = ".plmkit.json"


def marker_data(verb: str) -> dict:
    """What a marker records: the verb, and who wrote it when (for leftover clean-up)."""
    return {"verb": verb, "pid": os.getpid(), "host": socket.gethostname(), "time": time.time()}


def write_marker(directory: str | Path, verb: str) -> None:
    """Mark `directory` (created if needed) as an output of `verb`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MARKER).write_text(json.dumps(marker_data(verb)) + "\n", encoding="utf-8")


def read_marker(directory: str | Path) -> dict | None:
    """The marker of `directory`, or None when it has none (or an unreadable one)."""
    try:
        data = json.loads((Path(directory) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("verb"), str) else None


def check_replaceable(path: str | Path, verb: str, *, replace: bool, hint: str) -> None:
    """Refuse, with one line, to write `verb`'s output over `path` unless that is safe.

    Safe: `path` is missing or an empty directory, or holds `verb`'s marker and `replace` is set
    (`hint` tells the user how to set it, e.g. "pass overwrite=true to replace it")."""
    path = Path(path)
    if not path.exists():
        return
    if not path.is_dir():
        raise UserError(
            f"{path}: output exists and is a file, not a directory; choose another output"
        )
    if all(entry.name == LOCK for entry in path.iterdir()):  # empty, or only a (stale) lock
        return
    marker = read_marker(path)
    if marker is None:
        raise UserError(
            f"{path}: output directory is not empty and was not written by plmkit; "
            "choose another output (nothing there was touched)"
        )
    if marker["verb"] != verb:
        raise UserError(
            f"{path}: output holds a `plmkit {marker['verb']}` output, not a "
            f"`plmkit {verb}` one; choose another output"
        )
    if not replace:
        raise UserError(
            f"{path}: output already holds a `plmkit {verb}` output; "
            + (f"{hint}, or choose another output" if hint else "choose another output")
        )


def check_apart(output: str | Path, inputs: Iterable[str | Path | None]) -> None:
    """Refuse an output equal to, inside, or containing any of `inputs` (None entries skipped)."""
    out = Path(output).resolve()
    for given in inputs:
        if given is None or str(given) == "":
            continue
        source = _fixed_part(Path(given)).resolve()
        if out == source:
            raise UserError(f"{output}: output is the input {given}; choose another output")
        if out in source.parents:
            raise UserError(f"{output}: output contains the input {given}; choose another output")
        if source in out.parents:
            raise UserError(f"{output}: output is inside the input {given}; choose another output")


def _fixed_part(path: Path) -> Path:
    """A glob's folder before its first wildcard (`data/*.txt` → `data`); a plain path as it is."""
    parts = path.parts
    for i, part in enumerate(parts):
        if any(c in part for c in "*?["):
            return Path(*parts[:i]) if i else Path(".")
    return path


def claim_output(
    output: str | Path,
    verb: str,
    inputs: Iterable[str | Path | None] = (),
    *,
    replace: bool = False,
    hint: str = "pass overwrite=true to replace it",
) -> None:
    """All the checks an output needs before a stage starts work (see the module docstring)."""
    recover_interrupted_replace(output)
    check_apart(output, inputs)
    check_replaceable(output, verb, replace=replace, hint=hint)


# ----------------------------------------------------------------------------- leftovers


def old_copy(path: str | Path) -> Path:
    """Where `runtime.files.atomic_dir` parks the directory it is replacing."""
    path = Path(path)
    return path.with_name(f".{path.name}.old")


def recover_interrupted_replace(path: str | Path) -> None:
    """A replace stopped between its two renames leaves only the old copy: put it back."""
    path, old = Path(path), old_copy(path)
    if not path.exists() and old.is_dir() and read_marker(old) is not None:
        os.replace(old, path)


def remove_leftovers(parent: str | Path, name: str) -> list[Path]:
    """Delete temporary directories `.NAME.*.tmp` under `parent` that a dead plmkit process left
    (marked by it; its pid gone from this host); return what was removed."""
    removed = []
    parent = Path(parent)
    if not parent.is_dir():
        return removed
    for tmp in parent.glob(f".{name}.*.tmp"):
        marker = read_marker(tmp)
        if not tmp.is_dir():
            continue
        if marker is None:  # killed before its marker: an empty folder whose name holds the pid
            pid = _pid_in_name(tmp.name)
            if pid is None or any(tmp.iterdir()):
                continue
            marker = {"pid": pid, "host": socket.gethostname()}
        if marker.get("host") != socket.gethostname():
            continue
        if marker.get("pid") != os.getpid() and not process_alive(int(marker.get("pid", -1))):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed


def _pid_in_name(name: str) -> int | None:
    """The pid in `.NAME.PID-XXXX.tmp` (runtime.files.atomic_dir's temporary names), or None."""
    owner = name.removesuffix(".tmp").rsplit(".", 1)[-1].split("-", 1)[0]
    return int(owner) if owner.isdigit() else None
