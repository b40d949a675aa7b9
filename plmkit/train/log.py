"""What a run reports: a progress bar, `metrics.jsonl`, TensorBoard events and `curves.png`.

`metrics.jsonl` is the record: one JSON object per line, a "train" row every `log_every` steps
(step, training time, learning rate, mean loss and loss-function metrics over the window,
gradient norm, and throughput.py's tokens/s, MFU, data-wait share and peak memory) and an
"eval" row per evaluation (its metrics prefixed `eval_`). The TensorBoard events (tb/, written
by events.py without the tensorboard package) and `curves.png` (matplotlib) are views of the
same numbers, written for every run. The open averaging window is part of the checkpoint, and a
resumed run first drops the rows written after its checkpoint, so an interrupted run's log
reads like an uninterrupted one (throughput.SPEED_FIELDS aside). Appending line by line costs a
little I/O per log step and means a killed run may leave half a line, which the next read skips.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from plmkit.runtime.console import progress_interval
from plmkit.runtime.files import atomic_write_bytes, atomic_write_text
from plmkit.runtime.processes import world_size
from plmkit.train.events import EventFile
from plmkit.train.throughput import Meter

METRICS = "metrics.jsonl"
_NOT_METRICS = ("step", "time", "split")


def read_rows(run_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of a run's metrics.jsonl (none when absent); a half-written line is skipped."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "step" in row:
            rows.append(row)
    return rows


def restart(run_dir: str | Path, step: int) -> list[dict[str, Any]]:
    """Cut metrics.jsonl back to what a run had logged when its checkpoint at `step` was taken."""
    kept = [
        row
        for row in read_rows(run_dir)
        if row["step"] < step or (row["step"] == step and row.get("split") != "eval")
    ]
    atomic_write_text(Path(run_dir) / METRICS, "".join(json.dumps(r) + "\n" for r in kept))
    return kept


class TrainLog:
    """Averages metrics over a log window and writes rows; only the process with `enabled` writes."""

    def __init__(
        self,
        run_dir: Path,
        total_steps: int,
        start_step: int,
        history: list[dict[str, Any]],
        *,
        meter: Meter,
        enabled: bool,
        window: dict[str, Any] | None = None,
    ) -> None:
        self.history = history
        self.enabled = enabled
        self.meter = meter
        self.file = open(run_dir / METRICS, "a", encoding="utf-8") if enabled else None
        self.events = EventFile(run_dir / "tb", [(r["step"], _scalars(r), r["time"])
                                                 for r in history]) if enabled else None
        # the step plan fixes the total even under a time budget, so the bar can show an ETA
        self.bar = tqdm(total=total_steps, initial=start_step, disable=not enabled, desc="train",
                        mininterval=progress_interval(), dynamic_ncols=True)
        self.load_window(window or {})

    # -- the averaging window, part of every checkpoint

    def load_window(self, window: dict[str, Any]) -> None:
        """Continue a window from `window_state()` (an empty dict starts a fresh one)."""
        self.loss_sum: float | torch.Tensor = window.get("loss_sum", 0.0)
        self.losses: int = window.get("losses", 0)
        self.sums: dict[str, list] = {k: list(v) for k, v in window.get("sums", {}).items()}
        self.meter.load(window)  # tokens, FLOPs and data-wait seconds
        self.since: float = window.get("since", 0.0)

    def window_state(self) -> dict[str, Any]:
        """The open window as JSON-ready data."""
        loss_sum = float(self.loss_sum)
        return {
            "loss_sum": loss_sum,
            "losses": self.losses,
            "sums": {key: [float(total), count] for key, (total, count) in self.sums.items()},
            **self.meter.state(),
            "since": self.since,
        }

    def add(self, loss: torch.Tensor, metrics: dict[str, float | torch.Tensor],
            batch: dict[str, torch.Tensor], wait_s: float) -> None:
        """Count one micro-batch: its mean loss (kept on device), its metrics, its tokens and
        FLOPs, and the seconds the loop waited for it."""
        self.loss_sum = self.loss_sum + loss.detach().float()
        self.losses += 1
        for key, value in metrics.items():  # device tensors are summed where they are
            total = self.sums.setdefault(key, [0.0, 0])
            total[0] = total[0] + (value.detach().float() if torch.is_tensor(value) else float(value))
            total[1] += 1
        self.meter.add(batch, wait_s)

    # -- rows

    def end_step(
        self,
        step: int,
        train_time_s: float,
        lr: float,
        grad_norm: torch.Tensor | None,
        *,
        write: bool,
    ) -> None:
        """Advance the bar; when `write`, emit a train row for the window and open a new one."""
        self.bar.update(1)
        if not write or self.losses == 0:
            return
        row: dict[str, Any] = {
            "step": step,
            "split": "train",
            "time": round(train_time_s, 3),
            "lr": lr,
        }
        row["loss"] = float(self.loss_sum) / self.losses
        row.update({key: float(total) / count for key, (total, count) in self.sums.items()})
        if grad_norm is not None:
            row["grad_norm"] = float(grad_norm)
        row.update(self.meter.row(train_time_s - self.since, world_size()))
        self._emit(row)
        shown = {"loss": f"{row['loss']:.4f}", "lr": f"{lr:.2e}"}
        if "tokens_per_s" in row:
            shown["tok/s"] = f"{row['tokens_per_s']:.0f}"
        self.bar.set_postfix(shown, refresh=False)
        self.load_window({"since": train_time_s})

    def eval(self, step: int, train_time_s: float, metrics: dict[str, float]) -> None:
        """Emit an eval row; keys gain an `eval_` prefix unless they have one."""
        row: dict[str, Any] = {"step": step, "split": "eval", "time": round(train_time_s, 3)}
        row.update(
            {k if k.startswith("eval_") else f"eval_{k}": float(v) for k, v in metrics.items()}
        )
        self._emit(row)
        if self.enabled:
            shown = " ".join(f"{k}={v:.4g}" for k, v in row.items() if k not in _NOT_METRICS)
            self.bar.write(f"step {step}: {shown}")

    def summary(self) -> dict[str, float]:
        """The last train row's and the last eval row's metrics, merged."""
        merged: dict[str, float] = {}
        for split in ("train", "eval"):
            rows = [r for r in self.history if r.get("split") == split]
            if rows:
                merged.update({k: v for k, v in rows[-1].items() if k not in _NOT_METRICS})
        return merged

    def close(self) -> None:
        """Close the bar, metrics.jsonl and the event file."""
        self.bar.close()
        if self.file is not None:
            self.file.close()
        if self.events is not None:
            self.events.close()

    def _emit(self, row: dict[str, Any]) -> None:
        self.history.append(row)
        if self.file is not None:
            self.file.write(json.dumps(row) + "\n")
            self.file.flush()
        if self.events is not None:
            self.events.write(row["step"], _scalars(row))


def _scalars(row: dict[str, Any]) -> dict[str, float]:
    """A row's metrics as TensorBoard tags: train/loss, eval/eval_loss, ..."""
    return {f"{row['split']}/{k}": float(v) for k, v in row.items() if k not in _NOT_METRICS}


def write_curves(run_dir: str | Path) -> Path | None:
    """Render run_dir/curves.png from metrics.jsonl: one panel per metric, eval beside train
    (`eval_val_mlm_loss` in the `mlm_loss` panel); None when the log holds no metric yet."""
    # A bare Figure renders PNGs with the Agg canvas: no display, no pyplot state, and no
    # global backend switch in a caller's process (a notebook keeps its own).
    from matplotlib.figure import Figure

    rows = read_rows(run_dir)
    panels: dict[str, list[str]] = {}  # panel name → the row keys drawn in it
    for key in dict.fromkeys(k for r in rows for k in r if k not in _NOT_METRICS):
        panels.setdefault(key.removeprefix("eval_").removeprefix("val_"), []).append(key)
    names = sorted(panels, key=lambda name: (name != "loss", name != "lr", name))
    if not names:
        return None
    cols = min(3, len(names))
    fig = Figure(figsize=(4 * cols, 3 * ((len(names) + cols - 1) // cols)))
    axes = fig.subplots((len(names) + cols - 1) // cols, cols, squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):  # spare panels stay empty
        for key in panels[name]:
            style = "o-C1" if key.startswith("eval_") else "-C0"  # the same colours in every panel
            steps = [r["step"] for r in rows if key in r]
            ax.plot(steps, [r[key] for r in rows if key in r], style, label=key, markersize=3)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.legend(fontsize="small")
    for ax in list(axes.flat)[len(names) :]:
        ax.set_visible(False)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    path = Path(run_dir) / "curves.png"
    atomic_write_bytes(path, buffer.getvalue())
    return path
