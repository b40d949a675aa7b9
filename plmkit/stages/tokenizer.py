"""`plmkit tokenizer`: raw text files → a trained tokenizer directory that AutoTokenizer loads."""

from __future__ import annotations

from pathlib import Path

from plmkit.config import TokenizerStageConfig
from plmkit.runtime import UserError, print0
from plmkit.text.corpus import iter_documents
from plmkit.text.tokenizer import save_tokenizer, train_tokenizer


def run(cfg: TokenizerStageConfig) -> Path:
    """Train on every document of `cfg.inputs` and write `cfg.output`; returns the output path."""
    if not cfg.inputs:
        raise UserError("tokenizer: no inputs given (e.g. inputs=corpus.txt or inputs='[a.txt,b/]')")
    texts = (doc.text for doc in iter_documents(cfg.inputs, cfg.corpus))
    tokenizer = train_tokenizer(texts, cfg)
    save_tokenizer(tokenizer, cfg.output, lowercase=cfg.lowercase,
                   model_max_length=cfg.model_max_length)
    print0(f"tokenizer: {tokenizer.get_vocab_size()} tokens → {cfg.output}")
    return Path(cfg.output)
