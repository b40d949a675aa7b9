"""WordPiece training that gives the same vocabulary every run (tokenizer.py's wordpiece kind).

`tokenizers`' WordPieceTrainer (a BPE trainer underneath) is not deterministic: the same text
gives vocabularies of 7,037-7,047 pieces from one run to the next on the demo's corpus, with
one thread (RAYON_NUM_THREADS=1) as with many. The cause is hash order, not threads: the
trainer counts words in a Rust HashMap, whose iteration order is seeded at random, and hands
out the ids of the continuation pieces ("##a", "##1" …) in that order as it first meets them.
Merges of equal count are then broken by those ids, so a different order picks different
merges (and different duplicates, hence the varying vocabulary size). When `limit_alphabet`
cuts the alphabet, characters of equal count at the cut are also dropped in hash order.

The cure pins everything that hash order decides. A first, unlimited run reveals which
characters occur inside words (its "##c" pieces); the second run receives those "##c"
pieces as special tokens, which the trainer places first, in our sorted order, and, when the
alphabet must be cut, the characters to keep (by count, then code point) as its initial
alphabet. The pinned pieces are then taken out of the added tokens again: they stay ordinary
vocabulary entries. The cost is training twice (about a second each on the demo's corpus),
so the texts must be iterable twice (a one-shot iterator is read into a list); the ids
differ from an unpinned run's (the "##c" pieces come right after the special tokens).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable

from tokenizers import Tokenizer, trainers

PREFIX = "##"


def train_wordpiece(
    tok: Tokenizer,
    texts: Iterable[str],
    *,
    vocab_size: int,
    min_frequency: int,
    special_tokens: list[str],
    limit_alphabet: int,
) -> Tokenizer:
    """Train `tok` (a WordPiece model with its pipeline attached) deterministically; returns it."""
    if iter(texts) is texts:  # one-shot: training reads the texts twice
        texts = list(texts)
    probe = Tokenizer.from_str(tok.to_str())
    probe.train_from_iterator(texts, trainer=_trainer(vocab_size, min_frequency, special_tokens))
    pieces = probe.get_vocab(with_added_tokens=False)
    alphabet = sorted(t for t in pieces if len(t) == 1)
    inside = sorted(t[len(PREFIX) :] for t in pieces if _is_continuation_char(t))
    if len(alphabet) > limit_alphabet:
        alphabet = _most_frequent_chars(tok, texts, limit_alphabet)
    kept = set(alphabet)
    pinned = [PREFIX + c for c in inside if c in kept]
    trainer = _trainer(vocab_size, min_frequency, special_tokens + pinned, alphabet)
    tok.train_from_iterator(texts, trainer=trainer)
    data = json.loads(tok.to_str())
    data["added_tokens"] = [t for t in data["added_tokens"] if t["content"] in special_tokens]
    return Tokenizer.from_str(json.dumps(data))


def _is_continuation_char(token: str) -> bool:
    """Whether `token` is "##" plus one character: a piece the trainer makes before merging."""
    return token.startswith(PREFIX) and len(token) == len(PREFIX) + 1


def _trainer(
    vocab_size: int,
    min_frequency: int,
    special_tokens: list[str],
    alphabet: list[str] | None = None,
) -> trainers.WordPieceTrainer:
    """A WordPieceTrainer; with `alphabet`, exactly those characters are kept."""
    limits = {}
    if (
        alphabet is not None
    ):  # kept characters count as infinite: a limit of their number drops the rest
        limits = {"limit_alphabet": len(alphabet), "initial_alphabet": alphabet}
    return trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=special_tokens,
        continuing_subword_prefix=PREFIX,
        show_progress=False,
        **limits,
    )


def _most_frequent_chars(tok: Tokenizer, texts: Iterable[str], limit: int) -> list[str]:
    """The `limit` characters of the normalised texts with the highest counts, ties by code point."""
    counts: Counter[str] = Counter()
    normalize = tok.normalizer.normalize_str if tok.normalizer is not None else str
    for text in texts:
        counts.update(normalize(text))
    ranked = sorted((c for c in counts if not c.isspace()), key=lambda c: (-counts[c], c))
    return sorted(ranked[:limit])
