"""How fast a run trains: tokens/s, model-FLOPs utilisation, data-wait share and peak memory.

The trainer hands the meter every micro-batch with the seconds it waited for it (the time
inside the batch source's `next_batch`); at each log row the meter turns its window into
figures. Model FLOPs per token follow the PaLM paper's appendix B count for training
(forward + backward):

    6·N + 12·L·H·Q·T

N the parameters outside embedding tables (nn.Embedding modules: token, position, segment and
relative-position tables; an output projection tied to the token table is therefore not
counted, as in that convention, so LMs with a large vocabulary score low), L·H·Q the summed
width (heads × head width) of every attention module (self- and cross-attention), and T the
batch's sequence length (its `input_ids` columns, padding included). Both come from the model
the config built. MFU is the achieved FLOP/s over the peak: `train.peak_flops`, else for CUDA
a table of dense peaks by device name and precision (bf16 autocast; TF32 or plain fp32
otherwise). A CPU has no reliable peak, so there MFU is left out unless `train.peak_flops` is
set. Tokens are the batch's real tokens (`attention_mask`), else every `input_ids` position.
Peak memory is CUDA's `max_memory_allocated` on GPUs and the process's peak resident set
(getrusage) on CPU, both since the process started. The cost of measuring: a host clock read
around each `next_batch`, and nothing else (no device synchronisation).
"""

from __future__ import annotations

import re
import sys
from typing import Any

import torch
from torch import nn

from plmkit.config import TrainConfig
from plmkit.models.layers import Attention

# fields of a log row that depend on the machine's speed, not on the run's arithmetic
SPEED_FIELDS = ("time", "tokens_per_s", "mfu", "data_wait", "peak_memory_mib")

# dense peak FLOP/s by CUDA device name (first match wins): (bf16/fp16, tf32, fp32)
PEAKS = [
    (r"H100 NVL", (835e12, 418e12, 60e12)),
    (r"H100 PCIe", (756e12, 378e12, 51e12)),
    (r"H100|H200", (989e12, 495e12, 67e12)),
    (r"A100", (312e12, 156e12, 19.5e12)),
    (r"L40S", (362e12, 183e12, 91.6e12)),
    (r"\bL4\b", (121e12, 60e12, 30.3e12)),
    (r"\bA10\b", (125e12, 62.5e12, 31.2e12)),
]


def model_shape(model: nn.Module) -> tuple[int, int]:
    """(N, L·H·Q): parameters outside embedding tables, and the summed width of attention."""
    tables = {id(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
    non_embedding = sum(p.numel() for p in model.parameters() if id(p) not in tables)
    width = sum(m.num_heads * m.head_dim for m in model.modules() if isinstance(m, Attention))
    return non_embedding, width


def flops_per_token(non_embedding: int, attention_width: int, seq_len: int) -> float:
    """Training FLOPs per token, 6·N + 12·L·H·Q·T."""
    return 6.0 * non_embedding + 12.0 * attention_width * seq_len


def peak_flops(cfg: TrainConfig, device: torch.device, amp_dtype: torch.dtype | None) -> float | None:
    """`train.peak_flops`, else the CUDA device's dense peak for this precision, else None."""
    if cfg.peak_flops is not None:
        return cfg.peak_flops
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for pattern, (half, tf32, fp32) in PEAKS:
        if re.search(pattern, name):
            if amp_dtype is not None:
                return half
            return fp32 if torch.get_float32_matmul_precision() == "highest" else tf32
    return None


def peak_memory_mib(device: torch.device) -> float | None:
    """Peak memory so far in MiB: CUDA's max allocated, or on CPU the process's peak RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes there, KiB on Linux


def batch_tokens(batch: dict[str, torch.Tensor]) -> tuple[int, int]:
    """(tokens, sequence length) of a micro-batch; (0, 0) when it holds no token ids or mask."""
    mask, ids = batch.get("attention_mask"), batch.get("input_ids")
    seq_len = ids.shape[-1] if ids is not None else mask.shape[-1] if mask is not None else 0
    if mask is not None:
        return int(mask.sum()), seq_len
    return (ids.numel() if ids is not None else 0), seq_len


class Meter:
    """Counts a log window's tokens, FLOPs and data-wait seconds; turns them into row fields."""

    def __init__(self, model: nn.Module, device: torch.device, peak: float | None) -> None:
        self.shape = model_shape(model)
        self.device, self.peak = device, peak
        self.load({})

    def load(self, window: dict[str, Any]) -> None:
        """Continue a window from `state()` (an empty dict starts a fresh one)."""
        self.tokens: int = window.get("tokens", 0)
        self.flops: float = window.get("flops", 0.0)
        self.wait_s: float = window.get("wait_s", 0.0)

    def state(self) -> dict[str, Any]:
        """The open window as JSON-ready data."""
        return {"tokens": self.tokens, "flops": self.flops, "wait_s": self.wait_s}

    def add(self, batch: dict[str, torch.Tensor], wait_s: float) -> None:
        """Count one micro-batch and the seconds spent waiting for it."""
        tokens, seq_len = batch_tokens(batch)
        self.tokens += tokens
        self.flops += tokens * flops_per_token(*self.shape, seq_len)
        self.wait_s += wait_s

    def row(self, seconds: float, processes: int) -> dict[str, float]:
        """The window's figures over `seconds` of training (tokens/s across `processes`)."""
        if seconds <= 0:
            return {}
        row = {"data_wait": round(min(self.wait_s / seconds, 1.0), 4)}
        if self.tokens:
            row["tokens_per_s"] = round(self.tokens * processes / seconds, 1)
            if self.peak:  # per process: its FLOPs against its own device's peak
                row["mfu"] = round(self.flops / seconds / self.peak, 6)
        memory = peak_memory_mib(self.device)
        if memory is not None:
            row["peak_memory_mib"] = round(memory, 1)
        return row

    def summary(self, history: list[dict[str, Any]]) -> dict[str, Any]:
        """summary.json's "throughput": the train rows' figures averaged by the time each covers."""
        rows, spans, before = [], [], 0.0
        for row in (r for r in history if r.get("split") == "train"):
            rows.append(row)
            spans.append(max(row["time"] - before, 0.0))
            before = row["time"]
        out: dict[str, Any] = {}
        for key in ("tokens_per_s", "mfu", "data_wait"):
            pairs = [(r[key], s) for r, s in zip(rows, spans, strict=True) if key in r]
            total = sum(s for _, s in pairs)
            if total > 0:
                digits = {"tokens_per_s": 1, "mfu": 6, "data_wait": 4}[key]
                out[key] = round(sum(v * s for v, s in pairs) / total, digits)
        memory = [r["peak_memory_mib"] for r in rows if "peak_memory_mib" in r]
        if memory:
            out["peak_memory_mib"] = max(memory)
            out["peak_memory_is"] = ("cuda max_memory_allocated" if self.device.type == "cuda"
                                     else "process peak RSS")
        if self.peak:
            out["peak_flops"] = self.peak
        return out
