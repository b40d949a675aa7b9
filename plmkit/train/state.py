"""Exact resume: everything a run needs to continue as if it had never stopped, in step-N dirs.

A checkpoint is `run_dir/checkpoints/step-N/`:

    model.safetensors     the model's state_dict under our own names (tied weights stored once)
    state/optimizer.pt    AdamW moments and parameter groups
    state/rng.pt          Python, NumPy, torch CPU (and CUDA) generator states
    state/trainer.json    step, training time, data cursor, learning-rate schedule position,
                          the open log window, the TrainConfig and the caller's run config

Each directory is written under a temporary name and renamed when complete, so a run killed at
any moment leaves only whole checkpoints with names `step-N`; the newest few are kept. Train
state is read with `torch.load(weights_only=True)`, which refuses arbitrary pickled objects; the
cost is that only tensors and plain containers may go into it. Resuming compares the saved
configuration with the new one and refuses a change that would make the result differ from an
uninterrupted run, except for the fields in MAY_CHANGE_ON_RESUME (limits, cadence, speed).
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import safetensors.torch
import torch
from torch import nn

from plmkit.config import TrainConfig, to_dict
from plmkit.runtime.errors import UserError
from plmkit.runtime.files import atomic_dir
from plmkit.runtime.processes import rank

CHECKPOINTS = "checkpoints"
RNG_BY_RANK = "rng_by_rank.pt"  # every rank's generators, in a torchrun job's checkpoint

# Keys that may differ between the saved and the resumed configuration, wherever they appear:
# how long to run, how often to look, and speed-only settings.
MAY_CHANGE_ON_RESUME = frozenset(
    ["max_steps", "max_time_s", "eval_every", "save_every", "log_every"]
    + ["compile", "compile_dynamic", "threads", "device", "resume"]
)

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


def check_fresh_output(run_dir: str | Path, resume: bool) -> None:
    """Refuse a fresh run over another run's checkpoints, before a stage writes anything."""
    if list_checkpoints(run_dir) and not resume:
        raise UserError(f"{run_dir}: a run is already there; pass resume=true to continue it "
                        "(pretrain) or choose another output")


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


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
    with atomic_dir(path) as tmp:
        safetensors.torch.save_model(model, str(tmp / "model.safetensors"), force_contiguous=True)
        (tmp / "state").mkdir()
        torch.save(optimizer.state_dict(), tmp / "state" / "optimizer.pt")
        torch.save(capture_rng(), tmp / "state" / "rng.pt")
        if rng_by_rank is not None:
            torch.save(rng_by_rank, tmp / "state" / RNG_BY_RANK)
        text = json.dumps(trainer, indent=1, default=str)
        (tmp / "state" / "trainer.json").write_text(text + "\n", encoding="utf-8")
    for _, old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return path


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
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
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
