"""How task files are read: table columns, tagged files, QA windows and decoding, matching pairs
(re-exported by plmkit.config)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class TableConfig:
    """Which columns of a TSV/CSV/JSONL file hold the inputs and the label."""

    text_column: str = "text"
    text_pair_column: str | None = None  # second sentence for pair tasks
    label_column: str = "label"
    format: str = "auto"  # auto (from the suffix) | tsv | csv | jsonl
    header: bool = True  # TSV/CSV: first row names the columns; else columns are 0, 1, ...


@dataclasses.dataclass
class TagConfig:
    """How a token-classification (NER) file is read: CoNLL-style columns or JSONL {tokens, tags}."""

    scheme: str = "bio"  # the files' tag scheme: bio | bioes | bmes (MSRA)
    model_scheme: str | None = None  # retag to this scheme before training (e.g. bio); None = as read
    token_column: int = 0  # column of the word in a column file
    tag_column: int = -1  # column of the tag (-1 = the last)
    format: str = "auto"  # auto (from the suffix) | columns | jsonl
    separator: str | None = None  # joins words into text (None: "" for one-character words, else " ")


@dataclasses.dataclass
class QAConfig:
    """Extractive question answering: windows over long contexts, answer decoding, scoring."""

    stride: int = 128  # tokens shared by consecutive windows of a long context
    max_question_length: int = 64  # longer questions are cut to this many tokens
    max_answer_length: int = 30  # tokens; longer spans are never answers
    n_best: int = 20  # candidate spans kept per question
    version_2: bool | None = None  # unanswerable questions allowed (None: if train has any)
    null_threshold: float = 0.0  # v2: answer "" when the no-answer score wins by more than this
    metric: str = "auto"  # squad | cmrc (character-level) | auto (cmrc for mostly-CJK contexts)


@dataclasses.dataclass
class MatchingConfig:
    """Semantic matching: which training pairs are positives, and how sharp the contrastive loss is."""

    temperature: float = 0.05  # the loss's logits are cosine / temperature (0.05 = scale 20, as sentence-transformers)
    min_score: float | None = None  # pairs scoring ≥ this are positives (STS-B: 4.0); None = label "1" is positive
