"""Exact resume: everything a run needs to continue as if it had never stopped, in step-N dirs.

A checkpoint is `run_dir/checkpoints/step-N/`:

    model.safetensors     the model's state_dict under our own names (tied weights stored once)
    state/optimizer.pt    AdamW moments and parameter groups
    state/rng.pt          Python, NumPy, torch CPU (and CUDA) generator states
    state/trainer.json    step, training time, data cursor, learning-rate schedule position,
                          the step plan, the open log window, the TrainConfig and run config
    manifest.json         every file above with its size and SHA-256

Each directory is written under a temporary name, fsync'd, and renamed when complete, so a run
killed at any moment leaves only whole checkpoints with names `step-N`; the newest few are
kept. Resume checks the newest against its manifest and falls back to the one before, with a
warning, when the disk tore it (a power cut on a disk that reorders writes); temporary
directories a killed run left are removed at the next start. A full disk or an I/O error while
saving is a one-line UserError naming the path, with the previous checkpoint untouched. Train
state is read with `torch.load(weights_only=True)`, which refuses arbitrary pickled objects; the
cost is that only tensors and plain containers may go into it. Resuming compares the saved
configuration with the new one and refuses a change that would make the result differ from an
uninterrupted run, except for the fields in MAY_CHANGE_ON_RESUME (limits, cadence, speed).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import safetensors.torch
import torch
from safetensors import SafetensorError
from torch import nn

from plmkit.config import TrainConfig, to_dict
from plmkit.runtime import lock
from plmkit.runtime.console import print0
from plmkit.runtime.errors import UserError
from plmkit.runtime.files import atomic_dir, fsync_dir
from plmkit.runtime.outputs import (
    MARKER,
    check_apart,
    claim_output,
    old_copy,
    read_marker,
    remove_leftovers,
    write_marker,
)
from plmkit.runtime.processes import rank

CHECKPOINTS = "checkpoints"
RNG_BY_RANK = "rng_by_rank.pt"  # every rank's generators, in a torchrun job's checkpoint
MANIFEST = "manifest.json"  # every file of a checkpoint with its size and SHA-256

# Keys that may differ between the saved and the resumed configuration, wherever they appear:
# how long to run, how often to look, and speed-only settings.
MAY_CHANGE_ON_RESUME = frozenset(
    ["max_steps", "max_time_s", "eval_every", "save_every", "log_every"]
    + ["compile", "compile_dynamic", "threads", "device", "resume", "overwrite", "save_every_s",
       "peak_flops"]
)

_claims: dict[Path, tuple[str, tuple, bool]] = {}  # checked run dir → (verb, inputs, resume)
_STEP_DIR = re.compile(r"step-(\d+)")
_ABSENT = "(absent)"


class Restored(NamedTuple):
    """What `load_checkpoint` hands back: the trainer.json data and the RNG states to apply last."""

    trainer: dict[str, Any]
    rng: dict[str, Any]


# ----------------------------------------------------------------------------- finding checkpoints


def checkpoint_dir(run_dir: str | Path, step: int) -> Path:
    """The directory of the checkpoint taken after `step` optimizer steps."""
    return Path(run_dir) / CHECKPOINTS / f"step-{step}"


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints as (step, path), oldest first; temporary (incomplete) dirs are ignored."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _STEP_DIR.fullmatch(path.name)
        if match and path.is_dir():
            found.append((int(match.group(1)), path))
    return sorted(found)


def check_fresh_output(run_dir: str | Path, resume: bool, *, verb: str = "finetune",
                       inputs: Iterable[str | Path | None] = (), overwrite: bool = False) -> None:
    """Check, before a stage reads its data, that `run_dir` may take a training run: refuse a
    run directory another live process holds, an output that is, holds or sits in one of
    `inputs`, a directory plmkit did not write, another verb's output, or another run (unless
    `resume` continues it or `overwrite` replaces it). Nothing is written here; `open_run`, at
    the run's first write, takes the claim. Under torchrun rank 0 alone checks and claims (the
    stage's barrier orders the others)."""
    if resume and overwrite:
        raise UserError(f"{run_dir}: resume=true continues the run there and overwrite=true "
                        "replaces it; pass one of them")
    if rank() != 0:
        return
    run_dir = Path(run_dir)
    lock.check_free(run_dir)  # first: a second run is told who holds it, not that it exists
    _check_claim(run_dir, resume, verb, tuple(inputs), overwrite)
    _claims[run_dir.resolve()] = (verb, tuple(inputs), resume, overwrite)


def open_run(run_dir: str | Path) -> None:
    """Just before a run's first write: check the output again, park a run that `overwrite`
    replaces (see `set_aside`), take the one-writer lock, mark the directory as the verb's, and
    remove temporary checkpoints a killed run left (rank 0 only)."""
    if rank() != 0:
        return
    run_dir = Path(run_dir)
    claim = _claims.pop(run_dir.resolve(), None)
    if claim is not None:
        verb, inputs, resume, overwrite = claim
        _check_claim(run_dir, resume, verb, inputs, overwrite)
        if overwrite:
            set_aside(run_dir)
    lock.acquire(run_dir)
    verb = claim[0] if claim is not None else "train"
    marker = read_marker(run_dir)
    if marker is None or (claim is not None and marker["verb"] != verb):
        write_marker(run_dir, verb)
    remove_leftovers(run_dir / CHECKPOINTS, "step-*")


def set_aside(run_dir: Path) -> None:
    """Move the run that `overwrite=true` replaces to `.NAME.old`, where it stays until the new run
    is complete (`close_run`). A new run stopped before then leaves both; overwriting again
    keeps the last complete one (the parked run, unless the one in `run_dir` finished)."""
    if not run_dir.is_dir() or all(p.name == lock.LOCK for p in run_dir.iterdir()):
        return
    old = old_copy(run_dir)
    if old.exists():
        if not (run_dir / "final").exists():  # an unfinished replacement: the parked run stays
            shutil.rmtree(run_dir)
            return
        shutil.rmtree(old)
    os.replace(run_dir, old)
    fsync_dir(run_dir.parent)


def close_run(run_dir: str | Path) -> None:
    """A run is complete (its final model written): drop the run it replaced, release the lock."""
    if rank() != 0:
        return
    shutil.rmtree(old_copy(run_dir), ignore_errors=True)
    lock.release(run_dir)


def _check_claim(run_dir: Path, resume: bool, verb: str, inputs: tuple,
                 overwrite: bool = False) -> None:
    if resume and read_marker(run_dir) is None and list_checkpoints(run_dir):
        check_apart(run_dir, inputs)  # a run from before markers: resuming adds, destroys nothing
        return
    hint = "pass resume=true to continue it or overwrite=true to replace it"
    claim_output(run_dir, verb, inputs, replace=resume or overwrite or _never_saved(run_dir, verb),
                 hint=hint)


def _never_saved(run_dir: Path, verb: str) -> bool:
    """A run directory of `verb` that holds no checkpoint and no final model (a run stopped before
    its first save) has nothing to lose: a fresh run may take it over."""
    marker = read_marker(run_dir)
    return (marker is not None and marker["verb"] == verb and not list_checkpoints(run_dir)
            and not (run_dir / "final").exists())


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def usable_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest checkpoint that passes `verify_checkpoint`; a torn one is skipped with a
    warning naming it, so resume falls back to the one before (None when there is none)."""
    for _, path in reversed(list_checkpoints(run_dir)):
        problem = verify_checkpoint(path)
        if problem is None:
            return path
        print0(f"warning: {path} is damaged ({problem}); trying the checkpoint before it")
    return None


def verify_checkpoint(ckpt: str | Path) -> str | None:
    """None when every file listed in the checkpoint's manifest has its size and SHA-256, else
    what is wrong (checkpoints written before manifests existed pass unchecked)."""
    ckpt = Path(ckpt)
    try:
        manifest = json.loads((ckpt / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None if (ckpt / "state" / "trainer.json").is_file() else "no manifest, no state"
    except (OSError, ValueError) as err:
        return f"{MANIFEST} unreadable: {err}"
    for name, (size, digest) in manifest.items():
        file = ckpt / name
        if not file.is_file():
            return f"{name} is missing"
        if file.stat().st_size != size:
            return f"{name} has {file.stat().st_size} bytes, the manifest says {size}"
        if _sha256(file) != digest:
            return f"{name} does not match its SHA-256"
    return None


def _write_manifest(tmp: Path) -> None:
    files = sorted(p for p in tmp.rglob("*") if p.is_file() and p.name != MARKER)
    manifest = {str(p.relative_to(tmp)): [p.stat().st_size, _sha256(p)] for p in files}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- random generators


def capture_rng() -> dict[str, Any]:
    """The state of every random generator a training step may draw from."""
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    rng: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [
            np_name,
            torch.from_numpy(np_keys.astype(np.int64)),
            np_pos,
            np_has_gauss,
            np_gauss,
        ],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def restore_rng(rng: dict[str, Any]) -> None:
    """Put every generator back to a state from `capture_rng`."""
    version, internal, gauss = rng["python"]
    random.setstate((version, tuple(internal), gauss))
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = rng["numpy"]
    np.random.set_state(
        (np_name, np_keys.numpy().astype(np.uint32), np_pos, np_has_gauss, np_gauss)
    )
    torch.set_rng_state(rng["torch"])
    if (
        "cuda" in rng
        and torch.cuda.is_available()
        and len(rng["cuda"]) == torch.cuda.device_count()
    ):
        torch.cuda.set_rng_state_all(rng["cuda"])


# ----------------------------------------------------------------------------- save and load


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    trainer: dict[str, Any],
    *,
    keep: int = 2,
    rng_by_rank: list[dict[str, Any]] | None = None,
) -> Path:
    """Write step-N atomically (weights, optimizer, RNG, `trainer` as JSON); keep the newest `keep`.
    rng_by_rank: every rank's generator states, in a torchrun job (rng.pt holds this process's)."""
    path = checkpoint_dir(run_dir, step)
    previous = latest_checkpoint(run_dir)
    try:
        with atomic_dir(path, verb="checkpoint") as tmp:
            safetensors.torch.save_model(model, str(tmp / "model.safetensors"), force_contiguous=True)
            (tmp / "state").mkdir()
            torch.save(optimizer.state_dict(), tmp / "state" / "optimizer.pt")
            torch.save(capture_rng(), tmp / "state" / "rng.pt")
            if rng_by_rank is not None:
                torch.save(rng_by_rank, tmp / "state" / RNG_BY_RANK)
            text = json.dumps(trainer, indent=1, default=str)
            (tmp / "state" / "trainer.json").write_text(text + "\n", encoding="utf-8")
            _write_manifest(tmp)
    except (OSError, RuntimeError, SafetensorError) as err:  # disk full, I/O error, quota
        reason = err.strerror if isinstance(err, OSError) and err.strerror else _first_line(err)
        kept = f"{previous} is intact" if previous is not None else "no earlier checkpoint"
        raise UserError(f"{path}: cannot write checkpoint: {reason}; {kept}") from None
    for _, old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return path


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]


def read_trainer_state(ckpt: str | Path) -> dict[str, Any]:
    """A checkpoint's state/trainer.json; a missing or damaged file is a UserError naming it."""
    path = Path(ckpt) / "state" / "trainer.json"
    data = _read(path, lambda p: json.loads(p.read_text(encoding="utf-8")))
    if not isinstance(data, dict) or "step" not in data or "train_time_s" not in data:
        raise UserError(f"{path}: not a plmkit trainer state (no step / train_time_s)")
    return data


def load_checkpoint(
    ckpt: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer
) -> Restored:
    """Load weights and optimizer state in place; return trainer.json data and the saved RNG states."""
    ckpt = Path(ckpt)
    trainer = read_trainer_state(ckpt)
    device = str(next(model.parameters()).device)
    _read(
        ckpt / "model.safetensors", lambda p: safetensors.torch.load_model(model, p, device=device)
    )
    speed_flags = [{k: g.get(k) for k in ("fused", "foreach")} for g in optimizer.param_groups]
    _read(ckpt / "state" / "optimizer.pt", lambda p: optimizer.load_state_dict(_torch_load(p)))
    for group, flags in zip(optimizer.param_groups, speed_flags, strict=True):
        group.update(flags)  # fused/foreach follow this machine, not the one that saved
    by_rank = ckpt / "state" / RNG_BY_RANK
    if by_rank.is_file():  # a torchrun job's checkpoint: each rank takes its own
        rng = _read(by_rank, _torch_load)[rank()]
    else:
        rng = _read(ckpt / "state" / "rng.pt", _torch_load)
    return Restored(trainer, rng)


def _torch_load(path: Path) -> Any:
    return torch.load(path, map_location="cpu", weights_only=True)


def _read(path: Path, reader: Any) -> Any:
    """Call `reader(path)`, turning a missing, truncated or mismatched file into a UserError."""
    if not path.is_file():
        raise UserError(f"{path}: checkpoint file is missing")
    try:
        return reader(path)
    except Exception as err:  # safetensors, pickle, zip and JSON each raise their own kind
        reason = _first_line(err)
        raise UserError(
            f"{path}: cannot load checkpoint file (truncated or corrupt?): {reason}"
        ) from None


# ----------------------------------------------------------------------------- config checks


def check_resume_config(saved: dict[str, Any], cfg: TrainConfig, run_config: dict | None) -> None:
    """Refuse to resume when a setting that shapes the result changed; name the first such field."""
    if run_config is not None and saved.get("run_config") is not None:
        _refuse_change(saved["run_config"], _plain(run_config), "")
    _refuse_change(saved.get("train_config", {}), _plain(to_dict(cfg)), "train")


def _refuse_change(old: Any, new: Any, where: str) -> None:
    difference = _first_difference(old, new, where)
    if difference is not None:
        field, was, now = difference
        raise UserError(f"resume: config changed: {field} was {_show(was)}, now {_show(now)}")


def _first_difference(old: Any, new: Any, where: str) -> tuple[str, Any, Any] | None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(k for k in new if k not in old)]:
            if key in MAY_CHANGE_ON_RESUME:
                continue
            inner = f"{where}.{key}" if where else str(key)
            found = _first_difference(old.get(key, _ABSENT), new.get(key, _ABSENT), inner)
            if found is not None:
                return found
        return None
    return None if old == new else (where or "run config", old, new)


def _plain(data: Any) -> Any:
    """`data` as it reads back from JSON (tuples become lists, paths strings)."""
    return json.loads(json.dumps(data, default=str))


def _show(value: Any) -> str:
    return (
        value if value == _ABSENT else repr(value) if isinstance(value, str) else json.dumps(value)
    )
