"""The coverage report `plmkit tokenizer` ends with: figures counted by hand on tiny texts, the
held-out slice really kept out of training, and report.json written beside the tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plmkit.cli import main
from plmkit.config import TokenizerStageConfig
from plmkit.text.corpus import in_fraction
from plmkit.text.tokenizer_report import coverage
from plmkit.text.tokenizer_training import train_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    texts = ["aa bb 我们", "bb aa 我们好"] * 50
    return train_tokenizer(texts, TokenizerStageConfig(vocab_size=40, min_frequency=1))


def test_figures_match_a_hand_count(tokenizer) -> None:
    report = coverage(tokenizer, ["aa bb zz", "我们他"])
    # "zz" and 他 were never seen: one [UNK] each among 3 + 3 tokens; every word is one token.
    assert report["tokens"] == 6 and report["words"] == 6
    assert report["unk_rate"] == pytest.approx(2 / 6)
    assert report["characters"] == len("aa bb zz") + len("我们他")
    assert report["words_split"] == 0.0
    assert report["han_characters"] == 3 and report["han_single_token"] == pytest.approx(2 / 3)
    assert "[UNK]" not in [r["piece"] for r in report["rarest"]]


def test_a_word_cut_in_pieces_counts_as_split(tokenizer) -> None:
    report = coverage(tokenizer, ["aabb"])  # one word, no piece "aabb" in a 40-token vocabulary
    assert report["words"] == 1 and report["tokens"] > 1 and report["words_split"] == 1.0


def test_the_stage_holds_documents_out_and_writes_report_json(tmp_path: Path, capsys) -> None:
    lines = []
    for i in range(400):  # "quokka" only in documents that the hash holds out
        plain, marked = f"document {i} says the cat sat", f"document {i} says the quokka sat"
        lines.append(marked if in_fraction(marked, 0.1) else plain)
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    probe = tmp_path / "probe.txt"
    probe.write_text("the cow sat\n", encoding="utf-8")
    out = tmp_path / "tok"
    assert main(["tokenizer", f"inputs={corpus}", f"output={out}", "vocab_size=120",
                 "min_frequency=1", "corpus.doc_split=line", "holdout_fraction=0.1",
                 f"probe_file={probe}"]) == 0
    held = [t for t in lines if in_fraction(t, 0.1)]
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert list(report) == [f"held out ({len(held)} docs)", "probe.txt"] and 0 < len(held) < 160
    assert report["probe.txt"]["unk_rate"] > 0  # "cow" was never seen
    quokkas = sum("quokka" in t for t in lines)
    vocab = json.loads((out / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    assert quokkas >= 10 and "quokka" not in vocab and "cat" in vocab  # seen 10+ times, not learnt
    assert "| unk rate |" in capsys.readouterr().out


def test_a_bad_holdout_fraction_is_one_line_and_writes_nothing(tmp_path: Path, capsys) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text("some text\n", encoding="utf-8")
    code = main(["tokenizer", f"inputs={corpus}", f"output={tmp_path / 'tok'}", "holdout_fraction=1"])
    err = capsys.readouterr().err
    assert code == 2 and "holdout_fraction must be in [0, 1)" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "tok").exists()
