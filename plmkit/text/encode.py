"""Encode many sentences at once into one flat id array: the shards stage's hot loop.

`SentenceEncoder` sits between a loaded tokenizer (tokenizer.py) and the two places that turn
a whole corpus into ids: the shards stage's worker processes (shards.py) and perplexity
evaluation (tasks/lm/perplexity.py). It returns exactly what `encode_batch` without special tokens
would, as (ids, lengths) arrays instead of one Python object per sentence.

Key choice: for a BERT WordPiece tokenizer, plain sentences (printable ASCII and a few common
punctuation marks) skip the Rust pipeline: one regular expression splits them into words and a
cache of each word's pieces supplies the ids, several times faster. Every other sentence, and
every other kind of tokenizer, takes the ordinary path. The cost is a second code path that must
agree with the first (tests/text check it against `encode_batch`) and a bounded word cache.
"""

from __future__ import annotations

import itertools
import re

import numpy as np
from tokenizers import Tokenizer, models, pre_tokenizers

from plmkit.text.tokenizer import bert_normalizer

_WORD = re.compile(r"[A-Za-z0-9]+|[^A-Za-z0-9 ]|\n")  # BertPreTokenizer on plain text, + "\n"
# Printable ASCII plus Unicode punctuation (P*) that has no case and no decomposition, which
# BERT's normaliser leaves alone and its pre-tokeniser isolates like ASCII "-".
_PLAIN = re.compile("[ -~–—‘’“”«»•·]*")


class SentenceEncoder:
    """Token ids of many sentences as one flat array, equal to `encode_batch` without specials.

    The shards stage spends nearly all its time here. For a BERT WordPiece tokenizer, a
    sentence of printable ASCII (plus a few common punctuation marks such as – and ’) goes
    through the normaliser unchanged except for lower-casing, and the pre-tokeniser only cuts
    it into runs of letters and digits and single symbols. So we cut such sentences with one
    regular expression and look each word up in a cache of WordPiece results, asking the
    tokenizer only about words not seen before; that is several times faster than the Rust
    pipeline, whose per-character alignment bookkeeping dominates. Any other sentence
    (accents, CJK, control characters, a special token's text) takes the ordinary path, and
    tests/text compare both paths with `encode_batch`. The cost is a bounded word cache.
    """

    def __init__(self, tok: Tokenizer, max_cache: int = 200_000) -> None:
        self.tok = tok
        self.max_cache = max_cache
        # NFKC/NFC in front of BERT's normaliser leave the plain sentences alone too.
        norm, pre = bert_normalizer(tok), tok.pre_tokenizer
        self.fast = (
            norm is not None
            and isinstance(pre, pre_tokenizers.BertPreTokenizer)
            and isinstance(tok.model, models.WordPiece)
        )
        self.lowercase = bool(self.fast and norm.lowercase)
        self.words = Tokenizer.from_str(tok.to_str())  # the same tokenizer minus its normaliser
        self.words.normalizer = None
        # Text of an added token ([SEP] …) is matched before normalising: such sentences go slow.
        self.added = [t.content.lower() for t in tok.get_added_tokens_decoder().values()]
        self._clear()

    def _clear(self) -> None:
        # The cache in CSR form: word → w; its pieces are pieces[starts[w] : starts[w] + lens[w]].
        self.cache: dict[str, int] = {"\n": 0}
        self.starts = np.zeros(1, dtype=np.int64)
        self.lens = np.ones(1, dtype=np.int64)
        self.pieces = np.full(1, -1, dtype=np.int64)  # "\n" → -1 marks a sentence boundary

    def _learn(self, words: list[str]) -> None:
        """Add the WordPiece results of `words` (not yet cached) to the cache."""
        ids = [e.ids for e in self.words.encode_batch_fast(words, add_special_tokens=False)]
        lens = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        starts = len(self.pieces) + np.cumsum(lens) - lens
        new = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int64, count=int(lens.sum()))
        self.cache.update(zip(words, range(len(self.lens), len(self.lens) + len(words))))
        self.starts = np.concatenate([self.starts, starts])
        self.lens = np.concatenate([self.lens, lens])
        self.pieces = np.concatenate([self.pieces, new])

    def _cached_ids(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Ids and lengths of the sentences in `text` (normalised, one sentence per line)."""
        words = _WORD.findall(text)
        if len(self.cache) > self.max_cache:
            self._clear()  # Zipf's law: the frequent words come back within a chunk
        missing = [w for w in set(words) if w not in self.cache]
        if missing:
            self._learn(missing)
        w = np.fromiter(map(self.cache.__getitem__, words), dtype=np.int64, count=len(words))
        lens = self.lens[w]
        # Gather every word's pieces: position k of word i is starts[w[i]] + k.
        first = np.repeat(self.starts[w] - (np.cumsum(lens) - lens), lens)
        flat = self.pieces[first + np.arange(len(first))]
        bounds = np.flatnonzero(flat == -1)
        lengths = np.diff(bounds, prepend=-1, append=len(flat)) - 1
        return np.delete(flat, bounds), lengths

    def _rust_ids(self, sentences: list[str]) -> tuple[np.ndarray, np.ndarray]:
        ids = [e.ids for e in self.tok.encode_batch_fast(sentences, add_special_tokens=False)]
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        flat = np.fromiter(
            itertools.chain.from_iterable(ids), dtype=np.int64, count=int(lengths.sum())
        )
        return flat, lengths

    def _fast_text(self, sentences: list[str], fast: np.ndarray) -> str:
        """The fast sentences as one normalised text, one per line; drops any that hold the text
        of an added token (which the tokenizer matches before splitting words)."""
        text = "\n".join(itertools.compress(sentences, fast))
        low = text.lower()
        if any(content in low for content in self.added):  # rare: find them one by one
            for i in np.flatnonzero(fast):
                fast[i] = not any(content in sentences[i].lower() for content in self.added)
            text = "\n".join(itertools.compress(sentences, fast))
            low = text.lower()
        return low if self.lowercase else text

    def __call__(self, sentences: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(ids int64 [n_tokens], lengths int64 [n_sentences]) for `sentences`, in order."""
        if not self.fast:
            return self._rust_ids(sentences)
        fast = np.fromiter(map(_is_plain, sentences), dtype=bool, count=len(sentences))
        text = self._fast_text(sentences, fast)
        if not fast.any():
            return self._rust_ids(sentences)
        fast_ids, fast_lengths = self._cached_ids(text)
        slow_ids, slow_lengths = self._rust_ids(list(itertools.compress(sentences, ~fast)))
        lengths = np.empty(len(sentences), dtype=np.int64)
        lengths[fast], lengths[~fast] = fast_lengths, slow_lengths
        from_fast = np.repeat(fast, lengths)  # per token: which path produced it
        flat = np.empty(len(from_fast), dtype=np.int64)
        flat[from_fast], flat[~from_fast] = fast_ids, slow_ids
        return flat, lengths


def _is_plain(sentence: str) -> bool:
    """Whether BERT's normaliser would at most lower-case `sentence`: the fast path's input."""
    if sentence.isascii():  # O(1) in CPython
        return sentence.isprintable()
    return _PLAIN.fullmatch(sentence) is not None
