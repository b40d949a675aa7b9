"""Entity tag schemes (BIO, BIOES, BMES): tags ⇄ entity spans, and conversion between schemes.

Used by tasks/ner/data.py (checking the tags of a file) and tasks/ner/features.py (labels, entity
spans, scoring). Every conversion goes through spans: a tag sequence decodes to spans
(type, start, end), and spans encode to tags in any scheme. Scoring converts gold and predicted
tags to well-formed BIO through the same spans, so the entities we report with character
offsets are exactly the entities seqeval counts.

Key choice: decoding is lenient, with the CoNLL `conlleval` rules that seqeval's default mode
also follows (an inside or end tag that does not continue an open entity of its type starts a
new one). Gold files are well formed, so this only decides how an ill-formed *predicted*
sequence is read; the cost is that a model is never forced to emit valid sequences (no
constrained decoding), and its stray I- tags count as entities, as they do in CoNLL scoring.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from plmkit.runtime.errors import UserError

# The prefixes each scheme uses besides "O". BIO is IOB2; BIOES is also written IOBES; BMES
# (B-egin, M-iddle, E-nd, S-ingle) is BIOES with M for I, as Chinese NER sets (MSRA) write it.
SCHEMES: dict[str, tuple[str, ...]] = {
    "bio": ("B", "I"),
    "bioes": ("B", "I", "E", "S"),
    "bmes": ("B", "M", "E", "S"),
}
OUTSIDE = "O"
_INSIDE = ("I", "M")
_CLOSING = ("E", "S")


class Span(NamedTuple):
    """An entity over words [start, end) (end exclusive) of one sentence."""

    type: str
    start: int
    end: int


def check_scheme(scheme: str) -> tuple[str, ...]:
    """The prefixes of `scheme`; an unknown scheme is a UserError listing the known ones."""
    if scheme not in SCHEMES:
        raise UserError(f"tag scheme '{scheme}': use one of {', '.join(SCHEMES)}")
    return SCHEMES[scheme]


def split_tag(tag: str) -> tuple[str, str]:
    """("B", "PER") for "B-PER"; ("O", "") for "O"; anything else is ("", tag)."""
    if tag == OUTSIDE:
        return OUTSIDE, ""
    prefix, dash, kind = tag.partition("-")
    if not dash or not kind or len(prefix) != 1:
        return "", tag
    return prefix, kind


def check_tag(tag: str, scheme: str, where: str) -> None:
    """A UserError naming `where` (FILE:LINE) unless `tag` is "O" or PREFIX-TYPE of `scheme`."""
    prefixes = check_scheme(scheme)
    prefix, _ = split_tag(tag)
    if prefix == OUTSIDE or prefix in prefixes:
        return
    shown = "/".join(prefixes)
    others = [f"'{name}'" for name, known in SCHEMES.items() if prefix and prefix in known]
    hint = f" (is the file in scheme {' or '.join(others)}? set the tag scheme to match)"
    hint = hint if others else ""
    raise UserError(f"{where}: tag '{tag}' is not O or {shown}-TYPE of tag scheme '{scheme}'{hint}")


def tags_to_spans(tags: Sequence[str]) -> list[Span]:
    """Entity spans of a tag sequence in any scheme, read with the conlleval rules."""
    spans: list[Span] = []
    open_type, open_start = "", -1
    for i, tag in enumerate(tags):
        prefix, kind = split_tag(tag)
        if prefix == "":
            raise ValueError(f"tag '{tag}' is neither O nor PREFIX-TYPE")
        continues = open_start >= 0 and kind == open_type and prefix in _INSIDE + ("E",)
        if not continues:
            if open_start >= 0:
                spans.append(Span(open_type, open_start, i))
            open_type, open_start = (kind, i) if prefix != OUTSIDE else ("", -1)
        if prefix in _CLOSING and open_start >= 0:
            spans.append(Span(open_type, open_start, i + 1))
            open_type, open_start = "", -1
    if open_start >= 0:
        spans.append(Span(open_type, open_start, len(tags)))
    return spans


def spans_to_tags(spans: Sequence[Span], length: int, scheme: str) -> list[str]:
    """Tags of `length` words in `scheme` for non-overlapping spans."""
    prefixes = check_scheme(scheme)
    begin, inside = prefixes[0], prefixes[1]
    tags = [OUTSIDE] * length
    for span in spans:
        if not 0 <= span.start < span.end <= length:
            raise ValueError(f"span {span} lies outside {length} words")
        if any(tag != OUTSIDE for tag in tags[span.start : span.end]):
            raise ValueError(f"span {span} overlaps another span")
        tags[span.start : span.end] = [f"{inside}-{span.type}"] * (span.end - span.start)
        tags[span.start] = f"{begin}-{span.type}"
        if scheme != "bio" and span.end - span.start == 1:
            tags[span.start] = f"S-{span.type}"
        elif scheme != "bio":
            tags[span.end - 1] = f"E-{span.type}"
    return tags


def convert_tags(tags: Sequence[str], scheme: str) -> list[str]:
    """The same entities written in `scheme` (from any scheme; ill-formed input read leniently)."""
    return spans_to_tags(tags_to_spans(tags), len(tags), scheme)


def scheme_labels(types: Sequence[str], scheme: str) -> list[str]:
    """Every tag of `scheme` over entity `types`: "O", then per type (sorted) each prefix."""
    prefixes = check_scheme(scheme)
    return [OUTSIDE] + [f"{prefix}-{kind}" for kind in sorted(set(types)) for prefix in prefixes]
