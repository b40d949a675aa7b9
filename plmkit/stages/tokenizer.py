"""`plmkit tokenizer`: raw text files → a trained tokenizer directory that AutoTokenizer loads."""

from __future__ import annotations

import itertools
from pathlib import Path

from plmkit.config import TokenizerStageConfig
from plmkit.runtime.console import print0
from plmkit.runtime.errors import UserError
from plmkit.runtime.outputs import claim_output
from plmkit.text.corpus import iter_documents
from plmkit.text.tokenizer import save_tokenizer, train_tokenizer


def run(cfg: TokenizerStageConfig) -> Path:
    """Train on `cfg.inputs` (the first `max_documents` if set), write `cfg.output`, return its path."""
    if not cfg.inputs:
        raise UserError("tokenizer: no inputs given (e.g. inputs=corpus.txt or inputs='[a.txt,b/]')")
    if cfg.max_documents < 0:
        raise UserError(f"tokenizer: max_documents must be 0 (all) or positive, got {cfg.max_documents}")
    claim_output(cfg.output, "tokenizer", cfg.inputs, replace=cfg.overwrite)
    docs = iter_documents(cfg.inputs, cfg.corpus)
    if cfg.max_documents:
        docs = itertools.islice(docs, cfg.max_documents)
    texts = (doc.text for doc in docs)
    tokenizer = train_tokenizer(texts, cfg)
    save_tokenizer(tokenizer, cfg.output, lowercase=cfg.lowercase,
                   model_max_length=cfg.model_max_length)
    print0(f"tokenizer: {tokenizer.get_vocab_size()} tokens → {cfg.output}")
    return Path(cfg.output)
