"""Minimal sentence pairs for the bias probe, read from CrowS-Pairs or CHBias as published.

CrowS-Pairs (Nangia et al., 2020) is one CSV: `sent_more` (the more stereotypical sentence),
`sent_less`, `bias_type`. CHBias (Zhao et al., 2023) is a folder per category holding two
line-aligned files whose line i differ only in the group words: the first group's file is the
Weibo sentence as written about that group (female, lgbt, old, fat), the second swaps in the
other group (male, straight, young, slim), so the first is the "more stereotypical" side here.
`file=` names the CSV, the chbias/ folder, or one category folder. Both readers check what the
probe needs before any model is loaded: equal line counts, no empty sentence, the columns.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from plmkit.runtime.errors import UserError

# category: (the group the Weibo sentences are about, the group swapped in)
CHBIAS_GROUPS = {
    "gender": ("female", "male"),
    "orientation": ("lgbt", "straight"),
    "age": ("old", "young"),
    "appearance": ("fat", "slim"),
}
CROWS_COLUMNS = ("sent_more", "sent_less", "bias_type")

# What each dataset's authors (and later readers) say of its noise; printed under the table.
CAVEATS = {
    "crows-pairs": (
        "CrowS-Pairs caveat: its authors warn that a lower score is no proof that a model is "
        "unbiased, and Blodgett et al. (2021) found many pairs flawed (pairs that do not contrast "
        "a stereotype, or change more than the group words), so read the shares as a noisy probe, "
        "not a certificate."),
    "chbias": (
        "CHBias caveat: the pairs were made by swapping group words in Weibo posts and were built "
        "to probe conversational models (Zhao et al., 2023); scoring them by an MLM's "
        "pseudo-log-likelihood is plmkit's use of them, some swaps leave a pair identical, and "
        "the sentences are informal and noisy, so read the shares as a probe, not a certificate."),
}


@dataclass(frozen=True)
class BiasPair:
    """One minimal pair: the more and the less stereotypical sentence, its bias type and origin."""

    more: str
    less: str
    bias_type: str
    where: str  # file:line (CHBias: the more-stereotypical file's line)


def read_pairs(path: str | Path, limit: int = 0) -> tuple[str, list[BiasPair]]:
    """(dataset name, pairs) of a CrowS-Pairs CSV or a CHBias folder; `limit` > 0 keeps the first N."""
    path = Path(path)
    if path.is_dir():
        name, pairs = "chbias", _read_chbias(path)
    elif path.is_file():
        if path.suffix.lower() != ".csv":
            raise UserError(f"{path}: expected a CrowS-Pairs .csv file or a CHBias folder")
        name, pairs = "crows-pairs", _read_crows(path)
    else:
        raise UserError(f"{path}: bias file not found (a CrowS-Pairs CSV or a CHBias folder)")
    if not pairs:
        raise UserError(f"{path}: no sentence pairs found")
    return name, pairs[:limit] if limit > 0 else pairs


def _read_crows(path: Path) -> list[BiasPair]:
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in CROWS_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise UserError(f"{path}: no column {missing[0]} (CrowS-Pairs needs "
                            f"{', '.join(CROWS_COLUMNS)})")
        pairs = []
        for row in reader:
            where = f"{path}:{reader.line_num}"
            more, less = (row.get(c) or "" for c in CROWS_COLUMNS[:2])
            if not more.strip() or not less.strip():
                column = "sent_more" if not more.strip() else "sent_less"
                raise UserError(f"{where}: {column} is empty (every pair needs two sentences)")
            pairs.append(BiasPair(more.strip(), less.strip(), (row["bias_type"] or "").strip()
                                  or "unknown", where))
    return pairs


def _read_chbias(folder: Path) -> list[BiasPair]:
    if folder.name in CHBIAS_GROUPS:
        return _read_category(folder, folder.name)
    categories = [c for c in CHBIAS_GROUPS if (folder / c).is_dir()]
    if not categories:
        raise UserError(f"{folder}: no CHBias category folder ({', '.join(CHBIAS_GROUPS)}) in it")
    return [pair for c in categories for pair in _read_category(folder / c, c)]


def _read_category(folder: Path, category: str) -> list[BiasPair]:
    """Line i of CATEGORY_A_test.txt and of CATEGORY_B_test.txt, for every i."""
    files = [folder / f"{category}_{group}_test.txt" for group in CHBIAS_GROUPS[category]]
    lines = []
    for file in files:
        if not file.is_file():
            raise UserError(f"{file}: not found (a CHBias {category} folder holds "
                            f"{files[0].name} and {files[1].name})")
        lines.append(file.read_text(encoding="utf-8").splitlines())
    if len(lines[0]) != len(lines[1]):
        raise UserError(f"{files[0]}: {len(lines[0])} sentences but {files[1].name} has "
                        f"{len(lines[1])}; the two files of a pair set must align line by line")
    pairs = []
    for i, (more, less) in enumerate(zip(*lines, strict=True), start=1):
        for file, text in zip(files, (more, less), strict=True):
            if not text.strip():
                raise UserError(f"{file}:{i}: empty sentence (the files must align line by line)")
        pairs.append(BiasPair(more.strip(), less.strip(), category, f"{files[0]}:{i}"))
    return pairs
