"""`plmkit evaluate`: a fine-tuned classifier + a labelled file → metrics and results.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from plmkit.config import EvaluateConfig
from plmkit.runtime import UserError, atomic_write_text, print0
from plmkit.serve.pipeline import Classifier
from plmkit.tasks.classification import encode_examples, evaluate_logits, predict_logits
from plmkit.tasks.metrics import markdown_table
from plmkit.tasks.tables import read_table


def run(cfg: EvaluateConfig) -> dict[str, float]:
    """Score `cfg.model` on `cfg.file`; writes results.md (beside the model by default)."""
    if not cfg.file:
        raise UserError("evaluate: file is required (e.g. file=dev.tsv)")
    clf = Classifier.load(cfg.model)
    table = cfg.table or clf.table
    examples = read_table(cfg.file, table, task=clf.task)
    encoded = encode_examples(clf.tokenizer, examples, clf.max_length, clf.labels, clf.task)
    logits = predict_logits(clf.model, encoded, cfg.batch_size, clf.device)
    metrics = evaluate_logits(logits, encoded, clf.task, clf.labels)
    rows: list[dict[str, Any]] = [{"model": str(cfg.model), "file": Path(cfg.file).name,
                                   "examples": len(examples), **metrics}]
    out = Path(cfg.output) if cfg.output else Path(cfg.model) / f"eval-{Path(cfg.file).stem}.md"
    atomic_write_text(out, markdown_table(rows, list(rows[0])))
    print0(markdown_table(rows, list(rows[0])))
    return metrics
