"""Training a tokenizer on a corpus: WordPiece (BERT), byte-level BPE (GPT-2) or Unigram (T5).

The trained tokenizer runs the same pipeline (normaliser, pre-tokenizer, post-processor) that
tokenizer.py rebuilds when it loads one, so ids are the same whether a tokenizer was just
trained here or read back from disk; tokenizer.py also saves it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from tokenizers import (
    AddedToken,
    Tokenizer,
    models,
    normalizers,
    pre_tokenizers,
    trainers,
)

from plmkit.config import TokenizerStageConfig
from plmkit.runtime.errors import UserError
from plmkit.text.tokenizer import (
    ENDOFTEXT,
    HF_CLASS,
    KINDS,
    NUM_SENTINELS,
    SPECIAL_TOKENS,
    T5_SPECIALS,
    bert_pipeline,
    bpe_pipeline,
    unigram_pipeline,
)
from plmkit.text.wordpiece import train_wordpiece

# The smallest vocabulary that can hold the special tokens (and, for BPE, the 256 bytes) plus
# a few pieces; anything smaller is a typo.
_MIN_VOCAB = {"wordpiece": 10, "bpe": 256 + 1 + 10, "unigram": NUM_SENTINELS + 3 + 10}


def train_tokenizer(texts: Iterable[str], cfg: TokenizerStageConfig) -> Tokenizer:
    """Train a tokenizer of `cfg.kind` on `texts` (special tokens at the kind's fixed ids)."""
    if cfg.kind not in KINDS:
        raise UserError(
            f"config kind: '{cfg.kind}' is not a tokenizer kind; use {', '.join(KINDS)}"
        )
    if cfg.kind != "wordpiece" and cfg.lowercase:
        raise UserError(
            f"config lowercase: a {cfg.kind} tokenizer keeps case (Transformers' "
            f"{HF_CLASS[cfg.kind]} cannot lower-case); leave lowercase unset or false"
        )
    if cfg.vocab_size < _MIN_VOCAB[cfg.kind]:
        raise UserError(
            f"config vocab_size: {cfg.vocab_size} is too small for {cfg.kind} (need at least "
            f"{_MIN_VOCAB[cfg.kind]}: the special tokens{', 256 bytes' * (cfg.kind == 'bpe')} "
            "plus a few pieces)"
        )
    train = {"wordpiece": _train_wordpiece, "bpe": _train_bpe, "unigram": _train_unigram}
    tok = train[cfg.kind](texts, cfg)
    _read_as_corpus(tok, cfg.corpus.normalize)
    # The tokenizer as tokenizer.json will hold it: Unigram scores lose bits in the JSON round
    # trip, which flips near-ties ("......" + "." vs "." + "......") against the trained object.
    return Tokenizer.from_str(tok.to_str())


def _read_as_corpus(tok: Tokenizer, form: str) -> None:
    """Put the corpus reader's Unicode normalisation (corpus.py) in front of the normaliser."""
    if form == "none":
        return
    first = {"NFKC": normalizers.NFKC(), "NFC": normalizers.NFC()}[form]
    tok.normalizer = first if tok.normalizer is None else normalizers.Sequence([first, tok.normalizer])


def _train_wordpiece(texts: Iterable[str], cfg: TokenizerStageConfig) -> Tokenizer:
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", continuing_subword_prefix="##"))
    bert_pipeline(tok, lowercase=cfg.lowercase is not False)  # None (unset) = uncased
    return train_wordpiece(  # the same vocabulary every run (wordpiece.py says why it takes two)
        tok,
        texts,
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        # The library's default alphabet of 1000 characters leaves ~11% [UNK] on Chinese.
        limit_alphabet=cfg.limit_alphabet or cfg.vocab_size,
    )


def _train_bpe(texts: Iterable[str], cfg: TokenizerStageConfig) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    bpe_pipeline(tok)
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        special_tokens=[ENDOFTEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes: no unknown text
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def _train_unigram(texts: Iterable[str], cfg: TokenizerStageConfig) -> Tokenizer:
    tok = Tokenizer(models.Unigram())
    unigram_pipeline(tok, eos_id=1)
    trainer = trainers.UnigramTrainer(
        vocab_size=cfg.vocab_size - NUM_SENTINELS,
        special_tokens=list(T5_SPECIALS),
        unk_token="<unk>",
        show_progress=False,
    )
    try:
        tok.train_from_iterator(texts, trainer=trainer)
    except Exception as err:  # the Rust trainer raises a bare Exception
        if "not large enough to contain all chars" not in str(err):
            raise
        raise UserError(
            f"config vocab_size: {cfg.vocab_size} cannot hold every character of the corpus "
            "(a unigram vocabulary keeps them all, plus 100 sentinels); raise vocab_size"
        ) from None
    # The sentinels go into the model's vocabulary, after the trained pieces and in reverse,
    # as in T5's own files (so <extra_id_0> is the last id), and are matched as special tokens.
    pieces = [tuple(p) for p in json.loads(tok.to_str())["model"]["vocab"]]
    sentinels = [f"<extra_id_{i}>" for i in reversed(range(NUM_SENTINELS))]
    tok.model = models.Unigram(
        pieces + [(s, 0.0) for s in sentinels], unk_id=2, byte_fallback=False
    )
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in sentinels])
    return tok
