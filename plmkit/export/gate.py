"""The export gate: what each form of a fine-tuned model costs in accuracy and buys in speed.

Every form (the PyTorch source, ONNX fp32, ONNX int8) is scored on the same labelled rows by
the family's own `score` (an ONNX form through `OnnxModule`), so its metric is the metric
`plmkit evaluate` would print, and timed through the predictor a user would deploy (the
PyTorch family's `predict`, or the torch-free ONNX view): latency per request at batch 1 and
rows per second at batch 32. Agreement is the share of rows whose prediction is the source's.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from plmkit.export.onnx import OnnxModule
from plmkit.serve.onnx_predictor import MODEL_FILE, OnnxSession
from plmkit.tasks.contract import TaskModel
from plmkit.tasks.onnx_views import OnnxView

LATENCY_ROWS = 200  # batch-1 requests timed per form (after WARMUP)
THROUGHPUT_ROWS = 2048  # rows timed at batch 32
WARMUP = 5


@dataclasses.dataclass
class FormReport:
    form: str
    size_mb: float
    metric: str
    value: float
    delta: float  # points against the source (metric × 100)
    agreement: float  # share of rows predicted as the source predicts them
    p50_ms: float
    p95_ms: float
    rows_per_s: float
    kept: bool = True
    note: str = ""

    def row(self) -> dict[str, Any]:
        """gate.json's record: raw numbers (the metric and agreement as fractions)."""
        return dataclasses.asdict(self)

    def cells(self) -> dict[str, str]:
        """gate.md's row: scores in points, as a paper prints them."""
        return {"form": self.form, "size (MB)": f"{self.size_mb:.2f}",
                f"dev {self.metric}": f"{100 * self.value:.1f}", "Δ (points)": f"{self.delta:+.2f}",
                "agreement (%)": f"{100 * self.agreement:.1f}", "p50 ms, batch 1": f"{self.p50_ms:.1f}",
                "p95 ms, batch 1": f"{self.p95_ms:.1f}", "rows/s, batch 32": f"{self.rows_per_s:.0f}",
                "written": "yes" if self.kept else f"no: {self.note}"}


def primary_metric(metrics: dict[str, float], shown: tuple[str, ...]) -> str:
    """The metric the gate compares: the family's first shown one, else the first reported."""
    return next((m for m in shown if m in metrics), next(iter(metrics)))


def measure_source(tm: TaskModel, rows: list[Any], weights: Path) -> tuple[FormReport, list]:
    """The PyTorch model's report (Δ 0, agreement 1) and its predictions, the reference."""
    metrics, predictions = tm.family.score(tm, rows, 64)
    name = primary_metric(metrics, tm.family.shown)

    def predict(batch: list[Any], size: int) -> list:
        return tm.family.predict(tm, batch, size)

    p50, p95, rate = _timings(predict, rows)
    return FormReport("pytorch fp32", _megabytes(weights), name, metrics[name], 0.0, 1.0,
                      p50, p95, rate), predictions


def measure_onnx(form: str, model_dir: Path, tm: TaskModel, view: OnnxView, rows: list[Any],
                 source: FormReport, reference: list) -> FormReport:
    """An ONNX form scored by the family's `score` and timed through the torch-free view."""
    session = OnnxSession(model_dir / MODEL_FILE)
    metrics, predictions = tm.family.score(dataclasses.replace(tm, model=OnnxModule(session)), rows, 64)
    value = metrics[source.metric]

    def predict(batch: list[Any], size: int) -> list:
        return view.predict(session, tm.tokenizer, batch, tm.settings, size)

    p50, p95, rate = _timings(predict, rows)
    agreement = float(np.mean([_same(a, b) for a, b in zip(predictions, reference, strict=True)]))
    return FormReport(form, _megabytes(model_dir / MODEL_FILE), source.metric, value,
                      100 * (value - source.value), agreement, p50, p95, rate)


def _timings(predict: Callable[[list[Any], int], list], rows: list[Any]) -> tuple[float, float, float]:
    """(p50 ms, p95 ms) of single-row calls and rows/s at batch 32."""
    for row in rows[:WARMUP]:
        predict([row], 1)
    times = []
    for row in rows[:LATENCY_ROWS]:
        start = time.perf_counter()
        predict([row], 1)
        times.append(1000 * (time.perf_counter() - start))
    bulk = rows[:THROUGHPUT_ROWS]
    start = time.perf_counter()
    predict(bulk, 32)
    rate = len(bulk) / (time.perf_counter() - start)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95)), rate


def _same(a: dict, b: dict) -> bool:
    """Two predictions agree when every field but the scores and probabilities is equal."""
    def decided(p: dict) -> dict:
        return {k: v for k, v in p.items() if not isinstance(v, float | dict)}
    return decided(a) == decided(b)


def _megabytes(file: Path) -> float:
    return file.stat().st_size / 1e6
