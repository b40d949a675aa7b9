"""Chinese whole-word masking: jieba word starts stored beside the token ids at `prepare`, whole
words masked (and 80/10/10 decided per word) in pretraining batches, bad setups refused."""

from __future__ import annotations

import json
from pathlib import Path

import jieba
import numpy as np
import pytest

from plmkit.cli import main
from plmkit.objectives.mlm import MaskingSpec, PretrainBatches
from plmkit.text.shards import ShardReader
from plmkit.text.tokenizer import load_tokenizer, special_ids

SENTENCES = ["我们在中国人民银行工作。", "今天的天气非常好，我们去公园散步。", "这本书很好看，值得一读。",
             "北京大学的学生正在图书馆学习。", "他昨天买了一台新电脑和两本书。"]
TINY = ["model.hidden_size=32", "model.num_layers=1", "model.num_heads=2",
        "model.intermediate_size=64", "model.max_position=64", "objective.seq_len=32",
        "train.max_steps=2", "train.batch_size=4"]


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("wwm")
    corpus = root / "corpus.txt"
    corpus.write_text("".join(f"{s}\n\n" for s in SENTENCES * 40), encoding="utf-8")
    assert main(["tokenizer", f"inputs={corpus}", f"output={root / 'tok'}", "vocab_size=300",
                 "min_frequency=1"]) == 0
    for name, extra in (("words", ["word_boundaries=jieba"]), ("plain", [])):
        assert main(["prepare", f"inputs={corpus}", f"tokenizer={root / 'tok'}",
                     f"output={root / name}", "workers=1", "val_fraction=0", *extra]) == 0
    return {"root": root, "corpus": corpus, "tok": root / "tok", "words": root / "words",
            "plain": root / "plain"}


def test_word_starts_are_jiebas_and_the_ids_are_unchanged(shards: dict[str, Path]) -> None:
    words, plain = ShardReader(shards["words"]), ShardReader(shards["plain"])
    assert plain.words is None and np.array_equal(words.tokens, plain.tokens)
    tokenizer = load_tokenizer(shards["tok"])
    first = words.sentence(0)
    starts = words.words[: len(first)]
    assert "".join(tokenizer.id_to_token(int(i)) for i in first) == SENTENCES[0]
    expected = [1 if start in {s for _, s, _ in jieba.tokenize(SENTENCES[0])} else 0
                for start in range(len(SENTENCES[0]))]  # one Han character per token
    assert starts.tolist() == expected and 0 in expected  # 中国人民银行 is one word
    assert json.loads((shards["words"] / "header.json").read_text())["word_boundaries"] == "jieba"


def test_masking_takes_whole_words_and_decides_each_word_once(shards: dict[str, Path]) -> None:
    reader, tokenizer = ShardReader(shards["words"]), load_tokenizer(shards["tok"])
    sp = special_ids(tokenizer)
    masking = MaskingSpec(sp, tokenizer.get_vocab_size(), 0.15, word_boundaries=True)
    batches = PretrainBatches(reader, masking, batch_size=16, seq_len=32, nsp=False, seed=3)
    words_seen = whole_mask = 0
    for _ in range(40):
        batch = batches.next_batch(0.5)
        ids = batch["input_ids"].numpy()
        chosen = np.zeros(ids.size, dtype=bool)
        chosen[batch["mlm_positions"].numpy()] = True
        chosen = chosen.reshape(ids.shape)
        masked = ids == sp.mask
        for row in range(len(ids)):
            # Rebuild the row's original tokens to find its words: labels fill the chosen places.
            original = ids[row].copy()
            flat = np.flatnonzero(chosen.reshape(-1))
            row_flat = flat[(flat // ids.shape[1]) == row]
            original[row_flat % ids.shape[1]] = batch["mlm_labels"].numpy()[np.isin(flat, row_flat)]
            starts = _word_starts(reader, original, sp)
            for word in np.split(np.arange(len(original)), np.flatnonzero(starts)[1:]):
                word = word[np.isin(original[word], [sp.cls, sp.sep, sp.pad], invert=True)]
                if not len(word) or not chosen[row, word].any():
                    continue
                assert chosen[row, word].all(), "a masked span cut a word"
                assert masked[row, word].all() or not masked[row, word].any(), "80/10/10 per token"
                words_seen += 1
                whole_mask += bool(masked[row, word].all())
    assert words_seen > 300 and 0.7 < whole_mask / words_seen < 0.9  # ≈ 80% of words → [MASK]


def _word_starts(reader: ShardReader, row: np.ndarray, sp) -> np.ndarray:
    """The word starts of a batch row, found by locating its tokens in the shard."""
    body = row[(row != sp.cls) & (row != sp.sep) & (row != sp.pad)]
    tokens = np.asarray(reader.tokens)
    for start in range(len(tokens) - len(body) + 1):
        if np.array_equal(tokens[start : start + len(body)], body):
            flags = np.zeros(len(row), dtype=bool)
            inner = np.flatnonzero((row != sp.cls) & (row != sp.sep) & (row != sp.pad))
            flags[inner] = reader.words[start : start + len(body)].astype(bool)
            flags[~np.isin(np.arange(len(row)), inner)] = True
            return flags
    raise AssertionError("row not found in the shard")


def test_whole_word_pretraining_runs_on_word_shards(shards: dict[str, Path], tmp_path: Path) -> None:
    assert main(["pretrain", f"shards={shards['words']}", f"output={tmp_path / 'pre'}",
                 "objective.whole_word=true", "objective.nsp=false", *TINY]) == 0


def test_bad_setups_are_one_line_before_training(shards: dict[str, Path], tmp_path: Path,
                                                 capsys) -> None:
    code = main(["pretrain", f"shards={shards['plain']}", f"output={tmp_path / 'a'}",
                 "objective.whole_word=true", *TINY])
    err = capsys.readouterr().err
    assert code == 2 and "needs word boundaries" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "a").exists()
    assert main(["tokenizer", f"inputs={shards['corpus']}", f"output={tmp_path / 'uni'}",
                 "kind=unigram", "vocab_size=200"]) == 0
    capsys.readouterr()
    for setting, message in (("word_boundaries=jieba", "keeps each Han character"),
                             ("word_boundaries=stanza", "use one of none, jieba")):
        tok = tmp_path / "uni" if "jieba" in setting else shards["tok"]
        code = main(["prepare", f"inputs={shards['corpus']}", f"tokenizer={tok}",
                     f"output={tmp_path / 'b'}", setting])
        err = capsys.readouterr().err
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "b").exists()
