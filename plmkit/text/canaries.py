"""Canaries for the memorization probe: random secrets planted in a corpus at prepare time.

Following Carlini et al. (2019, "The Secret Sharer"), `plmkit prepare canaries=K` draws K
distinct secrets from a template such as "my secret number is {digits:9}" (each `{digits:N}`
slot takes N random digits, so the secret space R has 10^(sum of N) members), and inserts
canary i as `repeats[i]` extra documents at seeded random places among the corpus documents.
The secrets, their template and their repetition counts are recorded apart in canaries.json
beside the shards; `plmkit probe memorization` (probes/memorization.py) reads it back and
ranks each canary against random secrets of the same template.

Where it sits: between `corpus.iter_documents` and tokenization, before any PII scrubbing,
so that scrub_pii=true removes a PII-shaped canary ("my phone number is 13{digits:9}") the
way it would remove a real phone number.

Key choices and their costs: documents stream, so placing copies uniformly needs the number
of documents first; we count them in a cheap extra pass over the text (no tokenizing) when
canaries are asked for. A document's split is fixed by a hash of its text, so all copies of
a canary land in the same split; we draw only secrets whose canary text hashes into train,
which makes the secrets uniform over the train-hashing part of R rather than all of R (the
difference is val_fraction, about 1%). With scrub_pii=true the split is decided on the scrubbed
text, so scrubbed PII-shaped canaries go to one split together, which no longer matters.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

from plmkit.config import PrepareConfig
from plmkit.runtime.errors import UserError
from plmkit.text.corpus import in_fraction, iter_documents

CANARIES_FILE = "canaries.json"
_SLOT = re.compile(r"\{digits:(\d+)\}")
_MAX_DRAWS = 100  # tries per canary for a fresh secret that hashes into train


class Canary(NamedTuple):
    """One planted secret: the full text inserted, its secret digits, and how many copies."""

    text: str
    secret: str
    repeats: int


def slot_lengths(template: str, field: str = "canary_format") -> list[int]:
    """The digit count of each `{digits:N}` slot; UserError for a template without a valid one."""
    lengths = [int(n) for n in _SLOT.findall(template)]
    rest = _SLOT.sub("", template)
    if not lengths or "{" in rest or "}" in rest:
        raise UserError(f"config {field}: '{template}' needs one or more {{digits:N}} slots "
                        "and no other braces (e.g. 'my secret number is {digits:9}')")
    if min(lengths) < 1:
        raise UserError(f"config {field}: '{template}' has a {{digits:0}} slot; N must be ≥ 1")
    return lengths


def space_bits(template: str) -> float:
    """log2 |R|: the bits of randomness in one secret of the template."""
    return sum(slot_lengths(template)) * math.log2(10)


def fill(template: str, secret: str) -> str:
    """The template with its slots filled, in order, by the digits of `secret`."""
    pieces = iter(_split(secret, slot_lengths(template)))
    return _SLOT.sub(lambda _: next(pieces), template)


def _split(secret: str, lengths: list[int]) -> list[str]:
    starts = np.cumsum([0, *lengths])
    return [secret[a:b] for a, b in zip(starts[:-1], starts[1:], strict=True)]


def random_secrets(template: str, count: int, rng: np.random.Generator) -> list[str]:
    """`count` secrets drawn uniformly (with replacement) from the template's space."""
    digits = rng.integers(0, 10, size=(count, sum(slot_lengths(template))))
    return ["".join(map(str, row)) for row in digits]


def all_secrets(template: str) -> Iterator[str]:
    """Every secret of the template's space, in order (only sensible for small spaces)."""
    width = sum(slot_lengths(template))
    return (f"{i:0{width}d}" for i in range(10**width))


def make_canaries(
    count: int, repeats: list[int], template: str, seed: int, val_fraction: float = 0.0
) -> list[Canary]:
    """`count` distinct canaries; canary i gets repeats[i % len(repeats)] copies."""
    if count < 0:
        raise UserError(f"config canaries: {count} must be 0 (none) or more")
    if count and (not repeats or min(repeats) < 1):
        raise UserError(f"config canary_repeats: {repeats} must list counts ≥ 1 (e.g. [1, 4, 16, 64])")
    width = sum(slot_lengths(template))
    if count and 10**width < 100 * count:
        raise UserError(f"config canary_format: '{template}' has only 10^{width} secrets, too few "
                        f"for {count} canaries to be distinct and rare; use longer slots")
    rng = np.random.Generator(np.random.PCG64(seed))
    canaries: list[Canary] = []
    seen: set[str] = set()
    for i in range(count):
        for _ in range(_MAX_DRAWS):
            secret = random_secrets(template, 1, rng)[0]
            text = fill(template, secret)
            if secret not in seen and not in_fraction(text, val_fraction):
                break
        else:
            raise UserError(f"config val_fraction: {val_fraction} sends nearly every canary to "
                            "the val split; lower it")
        seen.add(secret)
        canaries.append(Canary(text, secret, repeats[i % len(repeats)]))
    return canaries


def with_canaries(
    texts: Iterable[str], n_documents: int, canaries: list[Canary], seed: int
) -> Iterator[str]:
    """`texts` with every copy of every canary inserted as a document at a seeded random place."""
    rng = np.random.Generator(np.random.PCG64([seed, 1]))  # apart from make_canaries' stream
    copies = [c.text for c in canaries for _ in range(c.repeats)]
    copies = [copies[j] for j in rng.permutation(len(copies))]
    places = rng.integers(0, n_documents + 1, size=len(copies))  # before document `place`
    pending = [(int(places[j]), copies[j]) for j in np.argsort(places, kind="stable")]
    k = 0
    for d, text in enumerate(texts):
        while k < len(pending) and pending[k][0] <= d:
            yield pending[k][1]
            k += 1
        yield text
    for _, text in pending[k:]:
        yield text


def write_canaries(directory: Path, canaries: list[Canary], template: str, **extra: object) -> None:
    """canaries.json in `directory`: the template, its space, and each canary (the record apart)."""
    record = {
        "template": template,
        "space_bits": space_bits(template),
        **extra,
        "canaries": [c._asdict() for c in canaries],
    }
    (directory / CANARIES_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def read_canaries(directory: str | Path) -> tuple[str, list[Canary], dict]:
    """(template, canaries, the whole record) from a shards directory's canaries.json."""
    path = Path(directory) / CANARIES_FILE
    if not path.is_file():
        raise UserError(f"{path}: missing; prepare the shards with canaries=K to plant canaries")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        template = record["template"]
        canaries = [Canary(str(c["text"]), str(c["secret"]), int(c["repeats"]))
                    for c in record["canaries"]]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as err:
        raise UserError(f"{path}: not a canaries record ({type(err).__name__}: {err})") from None
    width = sum(slot_lengths(template, field=f"{path} template"))
    for i, c in enumerate(canaries):
        if len(c.secret) != width or not c.secret.isdigit() or fill(template, c.secret) != c.text:
            raise UserError(f"{path}: canary {i} does not fill the template '{template}'")
    if not canaries:
        raise UserError(f"{path}: lists no canaries")
    return template, canaries, record


def planted_texts(cfg: PrepareConfig) -> tuple[Iterator[str], list[Canary]]:
    """The texts of cfg's corpus documents with cfg's canaries planted among them, and the canaries."""
    texts = (doc.text for doc in iter_documents(cfg.inputs, cfg.corpus))
    if not cfg.canaries:
        return texts, []
    canaries = make_canaries(cfg.canaries, cfg.canary_repeats, cfg.canary_format,
                             cfg.canary_seed, cfg.val_fraction)
    n_documents = sum(1 for _ in iter_documents(cfg.inputs, cfg.corpus))  # the cheap extra pass
    return with_canaries(texts, n_documents, canaries, cfg.canary_seed), canaries
