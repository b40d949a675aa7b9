"""corpus.py: every input format, normalisation, sentence splitting and each user error.

Expected values are written out by hand from the input text (or counted independently in the
real WikiExtractor files), never produced by the code under test.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
from pathlib import Path

import pytest

from plmkit.config import CorpusConfig
from plmkit.runtime.errors import UserError
from plmkit.text.corpus import Document, iter_documents, split_sentences

PLAIN = "First doc line one.\nFirst doc line two.\n\n\nSecond doc.\n  \nThird doc\n"


def docs(path: Path | str, **kwargs: object) -> list[Document]:
    return list(iter_documents([str(path)], CorpusConfig(**kwargs)))


def test_blank_line_documents_with_start_lines(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(PLAIN, encoding="utf-8")
    got = docs(tmp_path / "a.txt")
    assert [(d.text, d.line) for d in got] == [
        ("First doc line one.\nFirst doc line two.", 1),
        ("Second doc.", 5),
        ("Third doc", 7),
    ]
    assert got[0].source == str(tmp_path / "a.txt")


def test_line_and_file_splits(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(PLAIN, encoding="utf-8")
    by_line = docs(tmp_path / "a.txt", doc_split="line")
    assert [(d.text, d.line) for d in by_line] == [
        ("First doc line one.", 1),
        ("First doc line two.", 2),
        ("Second doc.", 5),
        ("Third doc", 7),
    ]
    (whole,) = docs(tmp_path / "a.txt", doc_split="file")
    assert whole.text == PLAIN.strip() and whole.line == 1


def test_jsonl_and_compressed_inputs(tmp_path: Path) -> None:
    rows = [{"text": "alpha beta", "id": 1}, {"text": "gamma", "id": 2}]
    body = "\n".join(json.dumps(r) for r in rows) + "\n\n"
    (tmp_path / "d.jsonl").write_text(body, encoding="utf-8")
    with lzma.open(tmp_path / "d.jsonl.xz", "wt", encoding="utf-8") as f:
        f.write(body)
    for name in ("d.jsonl", "d.jsonl.xz"):
        assert [(d.text, d.line) for d in docs(tmp_path / name)] == [
            ("alpha beta", 1),
            ("gamma", 2),
        ]
    openers = {"p.txt.xz": lzma.open, "p.txt.gz": gzip.open, "p.txt.bz2": bz2.open}
    for name, opener in openers.items():
        with opener(tmp_path / name, "wt", encoding="utf-8") as f:
            f.write(PLAIN)
        assert [d.text for d in docs(tmp_path / name)][1:] == ["Second doc.", "Third doc"]


def test_folders_are_recursive_and_sorted_and_globs_expand(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "z.txt").write_text("from z\n", encoding="utf-8")
    (tmp_path / "a.txt").write_text("from a\n", encoding="utf-8")
    (tmp_path / ".hidden").write_text("hidden\n", encoding="utf-8")
    assert [d.text for d in docs(tmp_path)] == ["from a", "from z"]
    assert [d.text for d in docs(tmp_path / "**" / "*.txt")] == ["from a", "from z"]


def _wiki_slice(source: Path, target: Path, n_docs: int) -> list[str]:
    """The first `n_docs` <doc> blocks of a real extract, written to `target`; returns their lines."""
    lines: list[str] = []
    closed = 0
    with lzma.open(source, "rt", encoding="utf-8") as f:
        for line in f:
            lines.append(line)
            closed += line.startswith("</doc>")
            if closed == n_docs:
                break
    target.write_text("".join(lines), encoding="utf-8")
    return lines


def test_wiki_english_slice(shared_data: Path, tmp_path: Path) -> None:
    lines = _wiki_slice(shared_data / "enwiki-extract/enwiki_part1.txt.xz", tmp_path / "en.txt", 5)
    got = docs(tmp_path / "en.txt")
    assert len(got) == 5
    assert got[0].line == 1
    assert got[0].text.startswith("Anarchism is a political philosophy that advocates")
    assert got[1].line == next(i for i, x in enumerate(lines, 1) if i > 1 and x.startswith("<doc "))
    for d in got:
        assert "<doc" not in d.text and "</doc>" not in d.text and "\n\n" not in d.text
    # Paragraph lines are kept: count the body lines of the first article by hand.
    end = next(i for i, x in enumerate(lines) if x.startswith("</doc>"))
    body = [x for x in lines[2:end] if x.strip()]
    assert got[0].text.count("\n") == len(body) - 1


def test_wiki_chinese_skips_title_only_docs(shared_data: Path, tmp_path: Path) -> None:
    # The first six zhwiki docs: 妄想女友 (body), four title-only stubs, 東富山站 (body).
    _wiki_slice(shared_data / "zhwiki-extract/zhwiki_part1.txt.xz", tmp_path / "zh.txt", 6)
    got = docs(tmp_path / "zh.txt", normalize="none")
    assert len(got) == 2
    assert got[0].text.startswith("《妄想女友》（）是2015年5月23日")
    assert got[1].text.startswith("東富山站（）是隸屬於愛之風富山鐵道")


def test_nltk_style_doc_without_title_keeps_first_line(tmp_path: Path) -> None:
    (tmp_path / "n.txt").write_text(
        '<doc id="abc/x.txt">\nFirst line.\nSecond.\n</doc>\n', encoding="utf-8"
    )
    assert [d.text for d in docs(tmp_path / "n.txt")] == ["First line.\nSecond."]


def test_normalisation(tmp_path: Path) -> None:
    (tmp_path / "w.txt").write_text("Ｒｏｏｍ １２３ ﬁne\n", encoding="utf-8")
    assert (
        docs(tmp_path / "w.txt")[0].text == "Room 123 fine"
    )  # NFKC: full-width → ASCII, ligature split
    assert docs(tmp_path / "w.txt", normalize="NFC")[0].text == "Ｒｏｏｍ １２３ ﬁne"
    assert docs(tmp_path / "w.txt", normalize="none")[0].text == "Ｒｏｏｍ １２３ ﬁne"
    (tmp_path / "c.txt").write_text("cafe\u0301\n", encoding="utf-8")
    assert docs(tmp_path / "c.txt", normalize="NFC")[0].text == "caf\u00e9"


def test_min_chars(tmp_path: Path) -> None:
    (tmp_path / "m.txt").write_text("tiny\n\nlong enough text\n", encoding="utf-8")
    assert [d.text for d in docs(tmp_path / "m.txt", min_chars=10)] == ["long enough text"]


# ----------------------------------------------------------------------------- sentences


def test_english_sentences() -> None:
    text = (
        "Mr. Smith went to Washington. He met Dr. Jones at 5 p.m. on Monday! Did he? "
        '"Yes," she said. The U.S. Army, e.g. Navy, grew. In 1990 it rained. 2001 was dry.'
    )
    assert split_sentences(text) == [
        "Mr. Smith went to Washington.",
        "He met Dr. Jones at 5 p.m. on Monday!",
        "Did he?",
        '"Yes," she said.',
        "The U.S. Army, e.g. Navy, grew.",
        "In 1990 it rained.",
        "2001 was dry.",
    ]


def test_english_lines_and_lower_case_continuations() -> None:
    text = "First para ends here. Next one.\n\n  Second para, no stop\na stop. before lower case stays."
    assert split_sentences(text) == [
        "First para ends here.",
        "Next one.",
        "Second para, no stop",
        "a stop. before lower case stays.",
    ]
    assert split_sentences("  \n\n ") == []


def test_chinese_and_japanese_sentences() -> None:
    text = "他說：「你好。」然後走了？還有……什麼；結束！\n今日は晴れです。明日は雨でしょう"
    assert split_sentences(text) == [
        "他說：「你好。」",
        "然後走了？",
        "還有……",
        "什麼；",
        "結束！",
        "今日は晴れです。",
        "明日は雨でしょう",
    ]
    # After NFKC the full-width ！？；（）… become ASCII; the splitter still sees them.
    assert split_sentences("走了?還有...什麼;好!(完)") == [
        "走了?",
        "還有...",
        "什麼;",
        "好!",
        "(完)",
    ]


# ----------------------------------------------------------------------------- errors


def test_missing_path_and_empty_glob(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="nope.txt: no such file or directory"):
        docs(tmp_path / "nope.txt")
    with pytest.raises(UserError, match=r"\*.zzz: glob matches no files"):
        docs(tmp_path / "*.zzz")


def test_non_utf8_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "bad.txt").write_bytes(b"fine\nalso fine\n\nbroken \xff byte\n")
    with pytest.raises(UserError, match=r"bad.txt:4: not valid UTF-8"):
        docs(tmp_path / "bad.txt")
    with gzip.open(tmp_path / "bad.txt.gz", "wb") as f:
        f.write(b"ok\n\xe9t\xe9\n")
    with pytest.raises(UserError, match=r"bad.txt.gz:2: not valid UTF-8"):
        docs(tmp_path / "bad.txt.gz")


def test_corrupt_archive(tmp_path: Path) -> None:
    (tmp_path / "c.txt.gz").write_bytes(gzip.compress(b"line one\nline two\n")[:-12] + b"garbage!")
    with pytest.raises(UserError, match=r"c.txt.gz: cannot read after line"):
        docs(tmp_path / "c.txt.gz")


def test_bad_json_and_missing_field(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"text": "ok"}\n{"text": oops}\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"a.jsonl:2: not valid JSON"):
        docs(tmp_path / "a.jsonl")
    (tmp_path / "b.jsonl").write_text('{"text": "ok"}\n\n{"body": "x"}\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"b.jsonl:3: no field 'text'.*body"):
        docs(tmp_path / "b.jsonl")


def test_empty_corpus_raises_after_yielding_nothing(tmp_path: Path) -> None:
    (tmp_path / "e.txt").write_text("\n \n\t\n", encoding="utf-8")
    stream = iter_documents([str(tmp_path / "e.txt")], CorpusConfig())
    with pytest.raises(UserError, match="no text found in .*e.txt"):
        next(stream)


def test_unclosed_doc_and_bad_setting(tmp_path: Path) -> None:
    (tmp_path / "w.txt").write_text('<doc id="1" title="T">\nT\n\nbody\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"w.txt:1: <doc> opened here is never closed"):
        docs(tmp_path / "w.txt")
    with pytest.raises(UserError, match="corpus.doc_split"):
        docs(tmp_path / "w.txt", doc_split="paragraph")
