"""The robustness probe: a fine-tuned model's metric on a dev file, clean and under each noise.

model + labelled file → rows read as the model's task reads them → the task's own `score`
(what `plmkit evaluate` reports) on the clean rows and on a perturbed copy per perturbation
(probes/perturb.py, seeded, at stated rates) → one table: perturbation, rate, the share of rows
it changed, each metric and its Δ from clean (points for percentage metrics). Any task whose
rows carry text works: sentence (pair) classification, regression, matching and seq2seq
(their input texts), NER (each word, its tag kept; a dropped or emptied word drops its tag)
and QA (the question only: noise in the context would move the gold answer spans).
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

from plmkit.config.probes import RobustnessConfig
from plmkit.probes.perturb import HAN, Perturbation, parse_perturbations, perturb_text
from plmkit.probes.report import check_report_dir, write_report
from plmkit.runtime.errors import UserError
from plmkit.tasks.contract import Row, TaskModel
from plmkit.tasks.metrics import PERCENT_METRICS, markdown_table
from plmkit.tasks.ner.data import TaggedSentence
from plmkit.tasks.qa.data import QAExample
from plmkit.tasks.registry import load_task_model
from plmkit.tasks.tables import Example


def run(cfg: RobustnessConfig) -> dict:
    """The metric of `cfg.model` on `cfg.file`, clean and under each perturbation; prints the table."""
    if not cfg.model or not cfg.file:
        raise UserError("probe robustness: model= and file= are required (a fine-tuned model "
                        "and a labelled dev file)")
    if cfg.batch_size < 1:
        raise UserError(f"config batch_size: must be ≥ 1, got {cfg.batch_size}")
    check_report_dir(cfg.output, [cfg.model, cfg.file])
    parse_perturbations(cfg.perturbations, chinese=False)  # a bad name fails before loading
    tm = load_task_model(cfg.model, cfg.device)
    if tm.family.score is None or tm.family.read is None:
        raise UserError(f"probe robustness: {tm.path} is {tm.family.description}, which has no "
                        "labelled metric; give a fine-tuned model")
    settings = tm.settings
    if cfg.table is not None and hasattr(settings, "table"):  # columns other than trained on
        settings = dataclasses.replace(settings, table=cfg.table)
    rows = tm.family.read(cfg.file, settings, cfg.limit)
    if not rows:
        raise UserError(f"{cfg.file}: no rows to score")
    chinese = _han_share(rows) > 0.3
    chosen = parse_perturbations(cfg.perturbations, chinese)
    clean = _score(tm, rows, cfg.batch_size)
    results = [{"perturbation": "none", "rate": 0.0, "rows_changed": 0.0, **clean}]
    for p, rate in chosen:
        rng = random.Random(f"{cfg.seed}:{p.name}")  # its own stream per perturbation
        noisy = [perturb_row(row, p, rate, rng) for row in rows]
        changed = sum(a != b for a, b in zip(rows, noisy, strict=True)) / len(rows)
        results.append({"perturbation": p.name, "rate": rate, "rows_changed": changed,
                        **_score(tm, noisy, cfg.batch_size)})
    markdown = render(cfg, len(rows), "Chinese" if chinese else "Latin-script", results, clean)
    data = {"model": cfg.model, "file": cfg.file, "rows": len(rows), "seed": cfg.seed,
            "results": results}
    write_report(cfg.output, "robustness", markdown, data)
    return data


def perturb_row(row: Row, p: Perturbation, rate: float, rng: random.Random) -> Row:
    """`row` with its input text perturbed (labels, tags and answers untouched)."""
    if isinstance(row, Example):
        pair = None if row.text_pair is None else perturb_text(row.text_pair, p, rate, rng)
        return dataclasses.replace(row, text=perturb_text(row.text, p, rate, rng), text_pair=pair)
    if isinstance(row, QAExample):
        return dataclasses.replace(row, question=perturb_text(row.question, p, rate, rng))
    if isinstance(row, TaggedSentence):
        return _perturb_tagged(row, p, rate, rng)
    raise UserError(f"probe robustness: rows of type {type(row).__name__} have no text to perturb")


def _perturb_tagged(row: TaggedSentence, p: Perturbation, rate: float, rng: random.Random
                    ) -> TaggedSentence:
    if p.on_words:
        words = p.noise(list(row.words), rate, rng)
    else:
        words = [p.noise(w, rate, rng) or None for w in row.words]  # an emptied word is dropped
    keep = [i for i, w in enumerate(words) if w is not None]
    if not keep:
        return row  # never drop every word
    tags = None if row.tags is None else tuple(row.tags[i] for i in keep)
    return dataclasses.replace(row, words=tuple(words[i] for i in keep), tags=tags)


def _score(tm: TaskModel, rows: list[Row], batch_size: int) -> dict[str, float]:
    metrics, _ = tm.family.score(tm, rows, batch_size)
    shown = tm.family.shown or tuple(metrics)
    return {k: float(metrics[k]) for k in shown if k in metrics}


def _han_share(rows: list[Row]) -> float:
    text = "".join(str(getattr(r, "text", "") or getattr(r, "question", "") or
                       "".join(getattr(r, "words", ()))) for r in rows[:200])
    letters = [c for c in text if c.isalpha()]
    return sum(1 for c in letters if HAN.match(c)) / max(len(letters), 1)


def render(cfg: RobustnessConfig, count: int, script: str, results: list[dict],
           clean: dict[str, float]) -> str:
    """The header and the table (metric and Δ from clean per perturbation) as printed."""
    table = []
    for r in results:
        cells: dict[str, Any] = {"perturbation": r["perturbation"],
                                 "rate": f"{r['rate']:g}" if r["rate"] else "–",
                                 "rows_changed_%": f"{100 * r['rows_changed']:.1f}"}
        for metric, base in clean.items():
            percent = metric in PERCENT_METRICS
            cells[metric] = r[metric]
            delta = (r[metric] - base) * (100 if percent else 1)
            cells[f"Δ {metric}"] = "–" if r["perturbation"] == "none" else (
                f"{delta:+.1f}" if percent else f"{delta:+.3f}")
        table.append(cells)
    head = (f"## Robustness probe: {cfg.model} on {cfg.file} ({count:,} rows, {script} "
            f"perturbations, seed {cfg.seed})\n\nRate: the chance each eligible character (or "
            "word) is changed. Δ: the perturbed score minus the clean one (points for "
            "percentages).\n\n")
    return head + markdown_table(table, list(table[0])) + "\n"
