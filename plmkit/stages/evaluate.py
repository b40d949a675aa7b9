"""`plmkit evaluate`: a fine-tuned model + a labelled file → metrics and results.md.

One path for every task family: load the model through the registry (tasks/registry.py), read
the file as the family reads its training files, and score it with the family's `score`, the
same function fine-tuning scores its dev set with. A GPT-style model, which has no labelled
task, is scored by perplexity on raw text (tasks/lm/perplexity.py).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from plmkit.config import EvaluateConfig
from plmkit.runtime.console import print0
from plmkit.runtime.errors import UserError
from plmkit.runtime.files import atomic_write_text
from plmkit.tasks.contract import TaskModel
from plmkit.tasks.lm.perplexity import perplexity, text_stream
from plmkit.tasks.lm.task import LM
from plmkit.tasks.metrics import markdown_table
from plmkit.tasks.registry import load_task_model


def run(cfg: EvaluateConfig) -> dict[str, float]:
    """Score `cfg.model` on `cfg.file`; writes results.md (beside the model by default)."""
    if not cfg.file:
        raise UserError("evaluate: file is required (e.g. file=dev.tsv)")
    if cfg.batch_size < 1:
        raise UserError(f"evaluate: batch_size must be ≥ 1, got {cfg.batch_size}")
    tm = load_task_model(cfg.model)
    if tm.family is LM:
        count, metrics = _score_perplexity(tm, cfg)
    else:
        settings = tm.settings
        if cfg.table is not None and hasattr(settings, "table"):  # columns other than trained on
            settings = dataclasses.replace(settings, table=cfg.table)
        rows = tm.family.read(cfg.file, settings, 0)
        metrics, _ = tm.family.score(tm, rows, cfg.batch_size)
        count = len(rows)
    rows_out: list[dict[str, Any]] = [{"model": str(cfg.model), "file": Path(cfg.file).name,
                                       "examples": count, **metrics}]
    out = Path(cfg.output) if cfg.output else Path(cfg.model) / f"eval-{Path(cfg.file).stem}.md"
    atomic_write_text(out, markdown_table(rows_out, list(rows_out[0])))
    print0(markdown_table(rows_out, list(rows_out[0])))
    return metrics


def _score_perplexity(tm: TaskModel, cfg: EvaluateConfig) -> tuple[int, dict[str, float]]:
    """Perplexity of a GPT-style model on raw text; `examples` counts the scored tokens."""
    model_cfg = tm.config
    if model_cfg.eos_token_id is None:
        raise UserError(f"{tm.path}/config.json: no eos_token_id to join documents with")
    context = model_cfg.max_position
    stride = cfg.stride or max(context // 2, 1)
    if not 0 < stride <= context:
        raise UserError(f"config stride: must be in [1, {context}] (the context window), got {cfg.stride}")
    stream, words = text_stream([cfg.file], cfg.corpus, tm.tokenizer, model_cfg.eos_token_id)
    metrics = perplexity(tm.model, stream, words, context=context, stride=stride,
                         batch_size=max(1, cfg.batch_size // 8), device=tm.device)
    return int(metrics["tokens"]), metrics
