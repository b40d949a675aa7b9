"""Seeded input noise for the robustness probe: small pure functions, each at a stated rate.

A character perturbation takes (text, rate, rng) and touches each eligible character with
probability `rate`: swaps of neighbours, deletions, insertions (a character of the same text),
keyboard typos (a QWERTY neighbour), full-width ⇄ half-width forms (a fixed offset of 0xFEE0
for printable ASCII, U+3000 for the space) and simplified → traditional Chinese (opencc, one
character at a time). A word perturbation takes (words, rate, rng) and returns one entry per
word, None for a dropped word: word drops and upper-casing. Words are whitespace-separated, or
jieba's words for Chinese. The same seed gives the same noise; each perturbation draws from
its own stream, so adding one leaves the others' noise unchanged.

Key choice: rates are per eligible unit (a letter for typos, a Han character for
traditional), so "5% typos" means the same on short and long inputs; the cost is that a
perturbation with few eligible units (typos in Chinese) changes little, which the probe's
`rows_changed` column shows.
"""

from __future__ import annotations

import functools
import logging
import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from plmkit.runtime.errors import UserError

CharNoise = Callable[[str, float, random.Random], str]
WordNoise = Callable[[list[str], float, random.Random], list[str | None]]
HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_WIDTH_OFFSET = 0xFEE0  # '!' (U+0021) … '~' (U+007E) ↔ '！' (U+FF01) … '～' (U+FF5E)
_QWERTY = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


def swap_chars(text: str, rate: float, rng: random.Random) -> str:
    """Swap each non-space character with the next one (also non-space) with probability `rate`."""
    chars, i = list(text), 0
    while i < len(chars) - 1:
        if not chars[i].isspace() and not chars[i + 1].isspace() and rng.random() < rate:
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
            i += 2  # a swapped character is not swapped again
        else:
            i += 1
    return "".join(chars)


def delete_chars(text: str, rate: float, rng: random.Random) -> str:
    """Delete each non-space character with probability `rate`."""
    return "".join(c for c in text if c.isspace() or rng.random() >= rate)


def insert_chars(text: str, rate: float, rng: random.Random) -> str:
    """After each non-space character, with probability `rate`, insert a character of the text."""
    pool = [c for c in text if not c.isspace()]
    out = []
    for c in text:
        out.append(c)
        if not c.isspace() and rng.random() < rate:
            out.append(rng.choice(pool))
    return "".join(out)


def keyboard_typos(text: str, rate: float, rng: random.Random) -> str:
    """Replace each ASCII letter with a neighbouring key (same case) with probability `rate`."""
    out = []
    for c in text:
        near = _neighbours().get(c.lower())
        if near and rng.random() < rate:
            key = rng.choice(near)
            c = key.upper() if c.isupper() else key
        out.append(c)
    return "".join(out)


def full_width(text: str, rate: float, rng: random.Random) -> str:
    """Turn each printable ASCII character (and the space) into its full-width form."""
    return "".join(_to_full(c) if _to_full(c) != c and rng.random() < rate else c for c in text)


def half_width(text: str, rate: float, rng: random.Random) -> str:
    """Turn each full-width ASCII form (and U+3000) into plain ASCII."""
    return "".join(_to_half(c) if _to_half(c) != c and rng.random() < rate else c for c in text)


def traditional(text: str, rate: float, rng: random.Random) -> str:
    """Write each simplified Chinese character that has a traditional form in that form."""
    convert = _opencc("s2t")
    out = []
    for c in text:
        if HAN.match(c) and rng.random() < rate:
            c = convert(c)
        out.append(c)
    return "".join(out)


def drop_words(words: list[str], rate: float, rng: random.Random) -> list[str | None]:
    """Drop each word with probability `rate` (None marks a dropped word)."""
    return [None if rng.random() < rate else w for w in words]


def upper_words(words: list[str], rate: float, rng: random.Random) -> list[str | None]:
    """Upper-case each word that has lower-case letters with probability `rate`."""
    return [w.upper() if w != w.upper() and rng.random() < rate else w for w in words]


@dataclass(frozen=True)
class Perturbation:
    """One kind of noise: its function, whether it acts on characters or words, default rates."""

    name: str
    noise: CharNoise | WordNoise
    on_words: bool
    latin_rate: float | None  # the default rate in `auto` for Latin-script data (None: not used)
    chinese_rate: float | None  # the default rate in `auto` for Chinese data


PERTURBATIONS = {p.name: p for p in (
    Perturbation("swap", swap_chars, False, 0.05, None),
    Perturbation("delete", delete_chars, False, 0.05, 0.05),
    Perturbation("insert", insert_chars, False, None, 0.05),
    Perturbation("typo", keyboard_typos, False, 0.05, None),
    Perturbation("drop_word", drop_words, True, 0.1, 0.1),
    Perturbation("upper", upper_words, True, 0.5, None),
    Perturbation("full_width", full_width, False, None, 1.0),
    Perturbation("half_width", half_width, False, None, 1.0),
    Perturbation("traditional", traditional, False, None, 1.0),
)}


def parse_perturbations(text: str, chinese: bool) -> list[tuple[Perturbation, float]]:
    """`auto`, or `NAME[:RATE],...` → (perturbation, rate) pairs; RATE defaults to auto's."""
    if text.strip() == "auto":
        column = "chinese_rate" if chinese else "latin_rate"
        return [(p, getattr(p, column)) for p in PERTURBATIONS.values()
                if getattr(p, column) is not None]
    chosen = []
    for item in (part.strip() for part in text.split(",") if part.strip()):
        name, _, rate_text = item.partition(":")
        if name not in PERTURBATIONS:
            raise UserError(f"config perturbations: '{name}' is not one of "
                            f"{', '.join(PERTURBATIONS)} (or auto)")
        p = PERTURBATIONS[name]
        try:
            rate = float(rate_text) if rate_text else (p.chinese_rate if chinese else p.latin_rate)
        except ValueError:
            raise UserError(f"config perturbations: '{item}': the rate must be a number") from None
        rate = rate if rate is not None else (p.latin_rate or p.chinese_rate)
        if not 0 < rate <= 1:
            raise UserError(f"config perturbations: '{item}': the rate must be in (0, 1]")
        chosen.append((p, rate))
    if not chosen:
        raise UserError("config perturbations: name at least one (or auto)")
    return chosen


def split_words(text: str) -> tuple[list[str], str]:
    """(words, joiner): jieba's words joined by "" for text with Han characters, else by spaces."""
    if HAN.search(text):
        return _jieba().lcut(text), ""
    return text.split(), " "


def perturb_text(text: str, p: Perturbation, rate: float, rng: random.Random) -> str:
    """`text` under perturbation `p` at `rate`."""
    if not p.on_words:
        return p.noise(text, rate, rng)
    words, joiner = split_words(text)
    noisy = p.noise(words, rate, rng)
    kept = [w for w in noisy if w is not None]
    if noisy == words or not kept:  # unchanged (keep its spacing), or every word dropped
        return text
    return joiner.join(kept)


def _to_full(c: str) -> str:
    return "\u3000" if c == " " else chr(ord(c) + _WIDTH_OFFSET) if "!" <= c <= "~" else c


def _to_half(c: str) -> str:
    return " " if c == "\u3000" else chr(ord(c) - _WIDTH_OFFSET) if "！" <= c <= "～" else c


@functools.cache
def _neighbours() -> dict[str, str]:
    """Each letter → the letters next to it on a QWERTY keyboard (same row and the rows beside)."""
    near: dict[str, str] = {}
    for r, row in enumerate(_QWERTY):
        for i, key in enumerate(row):
            around = [row[j] for j in (i - 1, i + 1) if 0 <= j < len(row)]
            for other in (r - 1, r + 1):
                if 0 <= other < len(_QWERTY):
                    around += [_QWERTY[other][j] for j in (i - 1, i, i + 1)
                               if 0 <= j < len(_QWERTY[other])]
            near[key] = "".join(around)
    return near


@functools.cache
def _opencc(config: str) -> Callable[[str], str]:
    try:
        import opencc
    except ImportError:
        raise UserError("perturbation traditional needs opencc: pip install "
                        "opencc-python-reimplemented") from None
    return opencc.OpenCC(config).convert


def _jieba():
    try:
        import jieba
    except ImportError:
        raise UserError("word perturbations of Chinese need jieba: pip install jieba") from None
    jieba.setLogLevel(logging.WARNING)
    return jieba
