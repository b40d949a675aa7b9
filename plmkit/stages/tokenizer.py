"""`plmkit tokenizer`: raw text files → a trained tokenizer directory that AutoTokenizer loads,
ending with a coverage table (text/tokenizer_report.py) on documents held out of training and
on any `probe_file=`, saved beside the tokenizer as report.json."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

from plmkit.config import TokenizerStageConfig
from plmkit.runtime.console import print0
from plmkit.runtime.errors import UserError
from plmkit.runtime.files import atomic_write_text
from plmkit.runtime.outputs import claim_output
from plmkit.text.corpus import in_fraction, iter_documents
from plmkit.text.tokenizer import save_tokenizer
from plmkit.text.tokenizer_report import coverage, report_table
from plmkit.text.tokenizer_training import train_tokenizer

MAX_HELD_OUT = 2000  # documents the report reads at most (the rest of the slice stays unused)


def run(cfg: TokenizerStageConfig) -> Path:
    """Train on `cfg.inputs` (the first `max_documents` if set), write `cfg.output`, return its path."""
    if not cfg.inputs:
        raise UserError("tokenizer: no inputs given (e.g. inputs=corpus.txt or inputs='[a.txt,b/]')")
    if cfg.max_documents < 0:
        raise UserError(f"tokenizer: max_documents must be 0 (all) or positive, got {cfg.max_documents}")
    if not 0 <= cfg.holdout_fraction < 1:
        raise UserError(f"tokenizer: holdout_fraction must be in [0, 1), got {cfg.holdout_fraction}")
    probe = [cfg.probe_file] if cfg.probe_file else []
    claim_output(cfg.output, "tokenizer", [*cfg.inputs, *probe], replace=cfg.overwrite)
    probe_texts = [d.text for d in iter_documents(probe, cfg.corpus)] if probe else []
    docs = iter_documents(cfg.inputs, cfg.corpus)
    if cfg.max_documents:
        docs = itertools.islice(docs, cfg.max_documents)
    held_out: list[str] = []

    def training_texts() -> Iterator[str]:
        for doc in docs:
            if in_fraction(doc.text, cfg.holdout_fraction):
                if len(held_out) < MAX_HELD_OUT:
                    held_out.append(doc.text)
            else:
                yield doc.text

    tokenizer = train_tokenizer(training_texts(), cfg)
    reports = {}
    if held_out:
        reports[f"held out ({len(held_out)} docs)"] = coverage(tokenizer, held_out)
    if probe_texts:
        reports[Path(cfg.probe_file).name] = coverage(tokenizer, probe_texts)
    save_tokenizer(tokenizer, cfg.output, lowercase=cfg.lowercase,
                   model_max_length=cfg.model_max_length)
    atomic_write_text(Path(cfg.output) / "report.json", json.dumps(reports, indent=1, ensure_ascii=False))
    print0(f"tokenizer: {tokenizer.get_vocab_size()} tokens → {cfg.output}")
    if reports:
        print0(report_table(reports))
    return Path(cfg.output)
