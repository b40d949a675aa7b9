"""Settings of the memorization probe: which model, which planted canaries, how many candidates.

The canaries themselves are planted by `plmkit prepare` (PrepareConfig's canary_* fields);
this config only says how `plmkit probe memorization` measures them (probes/memorization.py).
Kept in its own module because config/__init__.py is near its size limit.
ScrubConfig, below, is the other half of responsible use: `plmkit scrub` (stages/scrub.py).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class MemorizationConfig:
    """`plmkit probe memorization`: each planted canary's exposure (Carlini et al., 2019)."""

    model: str = ""  # a GPT-style (causal LM) run or Hugging Face directory
    shards: str = "shards"  # the shards directory whose canaries.json lists the planted canaries
    candidates: int = 10000  # random secrets of the canaries' template scored to rank each canary
    seed: int = 0  # draws the candidate secrets
    batch_size: int = 256  # sequences scored per forward pass
    device: str = "auto"  # auto | cpu | cuda
    output: str | None = None  # also write the table here (Markdown)


@dataclasses.dataclass
class ScrubConfig:
    """`plmkit scrub`: copies of text files with e-mails, URLs, IPs, phones, Chinese IDs, cards and IBANs replaced by [EMAIL], [URL], ..."""

    inputs: list[str] = dataclasses.field(default_factory=list)  # UTF-8 text files, folders or globs (.xz/.gz/.bz2 are read and written compressed alike)
    output: str = "scrubbed"  # folder for the copies (same names relative to the inputs' common folder), report.json and report.md
    overwrite: bool = False  # replace an earlier `plmkit scrub` output (never anything else)
    hits: bool = False  # also write hits.jsonl: file, line, kind, offsets and the matched text (it holds the personal data itself: keep it private)
