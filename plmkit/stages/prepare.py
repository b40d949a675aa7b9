"""`plmkit prepare`: raw text + tokenizer → packed, memory-mapped token shards."""

from __future__ import annotations

from pathlib import Path

from plmkit.config import PrepareConfig
from plmkit.runtime.console import print0
from plmkit.runtime.errors import UserError
from plmkit.runtime.outputs import claim_output
from plmkit.text.shards import prepare_shards


def run(cfg: PrepareConfig) -> Path:
    """Tokenize `cfg.inputs` into `cfg.output` (train/val shards + header.json)."""
    if not cfg.inputs:
        raise UserError("prepare: no inputs given (e.g. inputs=corpus.txt)")
    if not 0.0 <= cfg.val_fraction < 1.0:
        raise UserError(f"prepare: val_fraction must be in [0, 1), got {cfg.val_fraction}")
    claim_output(cfg.output, "prepare", [*cfg.inputs, cfg.tokenizer], replace=cfg.overwrite)
    header = prepare_shards(cfg)
    counts = header["splits"]
    print0("prepare: " + ", ".join(
        f"{name} {c['tokens']:,} tokens / {c['documents']:,} docs" for name, c in counts.items()
    ) + f" → {cfg.output}")
    if "pii" in header:
        found = ", ".join(f"{n:,} {kind}" for kind, n in header["pii"].items() if n)
        print0(f"prepare: scrub_pii replaced {found or 'nothing (no PII found)'} (header.json: pii)")
    if cfg.canaries:
        copies = sum(cfg.canary_repeats[i % len(cfg.canary_repeats)] for i in range(cfg.canaries))
        print0(f"prepare: planted {cfg.canaries} canaries ({copies:,} copies), listed in "
               f"{Path(cfg.output) / 'canaries.json'} (keep it apart from the shards you share)")
    return Path(cfg.output)
