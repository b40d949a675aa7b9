"""Word boundaries for whole-word masking of Chinese: which tokens start a word, by jieba.

Chinese has no spaces, and a BERT-style tokenizer makes every Han character a token, so the
"##" pieces that mark English words say nothing about 中国 or 银行. `prepare
word_boundaries=jieba` segments each sentence with jieba (the usual Chinese segmenter, as in
Chinese BERT-wwm, Cui et al. 2019) and stores, beside the token ids, one byte per token: 1 where
a word starts. The segmentation happens once, at `prepare`, from the same encoding whose ids
are written, so pretraining never re-tokenizes. A token starts a word when its first character
starts a jieba word, which also holds for English pieces inside Chinese text ("hel", "##lo":
only the first starts a word).
"""

from __future__ import annotations

import logging
import re

import numpy as np
from tokenizers import Tokenizer

from plmkit.runtime.errors import UserError

BOUNDARIES = ("none", "jieba")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_PROBE = "中华人民共和国银行"  # a tokenizer that is character-level for CJK cuts it into 9 tokens


def check_word_boundaries(kind: str, tokenizer: Tokenizer, source: str) -> None:
    """Refuse an unknown segmenter, or jieba with a tokenizer whose tokens span Han characters
    (a token could then straddle a word boundary)."""
    if kind not in BOUNDARIES:
        raise UserError(f"config word_boundaries: '{kind}': use one of {', '.join(BOUNDARIES)}")
    if kind == "jieba" and not character_level_cjk(tokenizer):
        raise UserError(f"{source}: word_boundaries=jieba needs a tokenizer that keeps each Han "
                        "character a token of its own (a BERT-style WordPiece tokenizer does)")
    if kind == "jieba":
        _jieba()


def character_level_cjk(tokenizer: Tokenizer) -> bool:
    """Whether every Han character of a probe sentence is a token of its own."""
    enc = tokenizer.encode(_PROBE, add_special_tokens=False)
    return [end - start for start, end in enc.offsets] == [1] * len(_PROBE)


def han_share(tokenizer: Tokenizer, ids: np.ndarray) -> float:
    """The share of `ids` that are a single Han character (to tell Chinese shards apart)."""
    if not len(ids):
        return 0.0
    tokens = [tokenizer.id_to_token(int(i)) or "" for i in ids]
    return sum(1 for t in tokens if len(t) == 1 and _HAN.match(t)) / len(tokens)


def encode_with_word_starts(tokenizer: Tokenizer, sentences: list[str]
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(flat token ids, tokens per sentence, flat word-start flags as uint8) of `sentences`."""
    jieba = _jieba()
    encodings = tokenizer.encode_batch(sentences, add_special_tokens=False)
    ids, lengths, starts = [], np.empty(len(sentences), dtype=np.int64), []
    for i, (sentence, enc) in enumerate(zip(sentences, encodings, strict=True)):
        word_starts = {start for _, start, _ in jieba.tokenize(sentence)}
        ids.extend(enc.ids)
        starts.extend(1 if start in word_starts else 0 for start, _ in enc.offsets)
        lengths[i] = len(enc.ids)
    return (np.asarray(ids, dtype=np.int64), lengths, np.asarray(starts, dtype=np.uint8))


def _jieba():
    try:
        import jieba
    except ImportError:
        raise UserError("word_boundaries=jieba needs the jieba package: pip install jieba") from None
    jieba.setLogLevel(logging.WARNING)  # not its "Building prefix dict" lines on every worker
    return jieba
