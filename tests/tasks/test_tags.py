"""tags.py: BIO/BIOES/BMES decoding and conversion.

The reference for decoding is seqeval's conlleval-compatible `get_entities`, on random tag
sequences, well formed or not; conversions are checked by hand-written tags and round trips.
"""

from __future__ import annotations

import random

import pytest
from seqeval.metrics.sequence_labeling import get_entities

from plmkit.runtime.errors import UserError
from plmkit.tasks.ner.schemes import (
    Span,
    check_tag,
    convert_tags,
    scheme_labels,
    spans_to_tags,
    tags_to_spans,
)


def test_lenient_decoding_matches_seqeval_on_random_sequences() -> None:
    rng = random.Random(0)
    tags = ["O"] + [f"{p}-{t}" for p in "BIES" for t in ("PER", "LOC")]
    for _ in range(2000):
        sequence = [rng.choice(tags) for _ in range(rng.randint(1, 12))]
        expected = sorted((kind, start, end + 1) for kind, start, end in get_entities(sequence))
        assert sorted(tags_to_spans(sequence)) == expected, sequence


def test_bmes_middle_reads_like_inside() -> None:
    # MSRA writes 中华人民共和国 as B M M … E.
    assert tags_to_spans(["B-NS", "M-NS", "M-NS", "E-NS", "S-NR", "O"]) == [
        Span("NS", 0, 4),
        Span("NR", 4, 5),
    ]


@pytest.mark.parametrize(
    ("scheme", "expected"),
    [
        ("bio", ["B-PER", "I-PER", "I-PER", "O", "B-LOC", "B-LOC"]),
        ("bioes", ["B-PER", "I-PER", "E-PER", "O", "S-LOC", "S-LOC"]),
        ("bmes", ["B-PER", "M-PER", "E-PER", "O", "S-LOC", "S-LOC"]),
    ],
)
def test_spans_write_each_scheme(scheme: str, expected: list[str]) -> None:
    spans = [Span("PER", 0, 3), Span("LOC", 4, 5), Span("LOC", 5, 6)]
    assert spans_to_tags(spans, 6, scheme) == expected
    assert tags_to_spans(expected) == spans
    for other in ("bio", "bioes", "bmes"):
        assert tags_to_spans(convert_tags(expected, other)) == spans


def test_ill_formed_prediction_converts_to_well_formed_bio() -> None:
    assert convert_tags(["I-PER", "I-PER", "O", "E-LOC", "I-ORG"], "bio") == [
        "B-PER",
        "I-PER",
        "O",
        "B-LOC",
        "B-ORG",
    ]


def test_scheme_labels_cover_every_prefix_of_every_type() -> None:
    assert scheme_labels(["PER", "LOC", "PER"], "bio") == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    assert len(scheme_labels(["NR", "NS", "NT"], "bmes")) == 1 + 3 * 4


def test_tag_of_another_scheme_names_the_file_line_and_suggests_the_scheme() -> None:
    check_tag("M-NS", "bmes", "f:1")
    with pytest.raises(UserError, match=r"f:7: tag 'M-NS' .* scheme 'bmes'"):
        check_tag("M-NS", "bio", "f:7")
    with pytest.raises(UserError, match="f:2: tag 'PER'"):
        check_tag("PER", "bio", "f:2")
    with pytest.raises(UserError, match="tag scheme 'iobes2'"):
        check_tag("O", "iobes2", "f:1")
