"""Token classification (NER): tagged sentences → sub-word windows → word tags → entities → scores.

Where it sits: a stage reads files with tasks/ner/data.py `read_tagged`, fixes the tag ids with
`tag_label_set` (from the training file), tokenizes once with `encode_tagged`, and hands
tasks/sampling.py `SampledBatches` over `collate_tagged`, and `token_classification_loss`, to the
one trainer; `predict_tags` maps a model's outputs back to one tag per word, `sentence_entities`
turns them into entities with character offsets, and `ner_metrics` scores entities with seqeval.
A tagger is any `nn.Module` called as `model(input_ids, attention_mask, token_type_ids)` that
returns logits (B, T, num_tags).

Key choices and their cost:
- Words are encoded pre-tokenized (`is_pretokenized=True`), so `word_ids` say which word each
  sub-word belongs to. Only a word's first sub-word carries its label and its prediction (the
  others get -100 and are ignored), as BERT's NER recipe does.
- A sentence longer than `max_length` is cut, between words, into several windows encoded
  separately; nothing is truncated away, but a window sees no context beyond its edges.
- The label set is "O" plus every prefix of the scheme for each entity type of the training
  file. A dev or test tag of a type absent from training is an error, not a silent "O": it is
  almost always a file in another scheme or tag set, and the model could never predict it.
- Words that the tokenizer turns into no token at all (a lone control character) cannot be
  labelled or predicted; they are counted (`TokenFeatures.unaligned`) and predicted "O".
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch import nn

from plmkit.runtime.errors import UserError
from plmkit.tasks.classification.schema import LabelSet
from plmkit.tasks.ner.data import TaggedSentence
from plmkit.tasks.ner.schemes import (
    OUTSIDE,
    check_scheme,
    convert_tags,
    scheme_labels,
    split_tag,
    tags_to_spans,
)
from plmkit.tasks.sampling import INPUT_KEYS, pad_inputs, predict_batches
from plmkit.text.tokenizer import configured, special_ids

IGNORE = -100  # label of a position with no loss: specials, padding, non-first sub-words
MIN_MAX_LENGTH = 3  # [CLS] word [SEP]


# ----------------------------------------------------------------------------- labels


def tag_label_set(sentences: Sequence[TaggedSentence], scheme: str) -> LabelSet:
    """The tag set: O, then every `scheme` tag of each entity type in (training) `sentences`."""
    check_scheme(scheme)
    types = {split_tag(tag)[1] for s in sentences for tag in s.tags or () if tag != OUTSIDE}
    source = f"the training file {sentences[0].source}" if sentences else "the training file"
    if not types:
        raise UserError(f"no entity tags (only O) in {source}")
    return LabelSet(scheme_labels(sorted(types), scheme), source)


def check_tags(sentences: Sequence[TaggedSentence], labels: LabelSet) -> None:
    """Fail, naming the word, on a tag the label set cannot hold (before any training)."""
    ids = {name: i for i, name in enumerate(labels.names)}
    for sentence in sentences:
        _tag_ids(sentence, ids, labels)


def _tag_ids(sentence: TaggedSentence, ids: dict[str, int], labels: LabelSet) -> list[int]:
    out = []
    for offset, tag in enumerate(sentence.tags or ()):
        if tag not in ids:
            raise UserError(
                f"{sentence.where(offset)}: tag '{tag}': entity type '{split_tag(tag)[1]}' does not "
                f"occur in {labels.source} (types there: {_types(labels)}); the model cannot "
                "predict it"
            )
        out.append(ids[tag])
    return out


def _types(labels: LabelSet) -> str:
    return ", ".join(sorted({split_tag(name)[1] for name in labels.names if name != OUTSIDE}))


# ----------------------------------------------------------------------------- tokenizing


@dataclass
class TokenFeatures:
    """Encoded windows, unpadded: ids, labels at first sub-words, and the word each labels."""

    input_ids: list[np.ndarray]  # per window: [CLS] sub-words [SEP]
    labels: list[np.ndarray] | None  # per window: tag id at first sub-words, IGNORE elsewhere
    word_index: list[np.ndarray]  # per window: word of the sentence at first sub-words, else -1
    sentence: np.ndarray  # (F,) the sentence each window comes from
    words_per_sentence: list[int]
    unaligned: int  # words with no token at all: never labelled, predicted O
    pad_id: int

    def __len__(self) -> int:
        return len(self.input_ids)


def encode_tagged(
    tokenizer: Tokenizer,
    sentences: Sequence[TaggedSentence],
    max_length: int,
    labels: LabelSet | None,
) -> TokenFeatures:
    """Tokenize pre-split words into windows of ≤ max_length tokens, labelling first sub-words."""
    if max_length < MIN_MAX_LENGTH:
        raise UserError(
            f"max_length={max_length}: use at least {MIN_MAX_LENGTH} ([CLS] word [SEP])"
        )
    specials = special_ids(tokenizer)
    with_labels = labels is not None and any(s.tags is not None for s in sentences)
    if with_labels and any(s.tags is None for s in sentences):
        bad = next(s for s in sentences if s.tags is None)
        raise UserError(f"{bad.source}:{bad.line}: no tags, while other sentences have them")
    work = configured(tokenizer)  # no truncation, no padding
    encodings = work.encode_batch(
        [list(s.words) for s in sentences], is_pretokenized=True, add_special_tokens=False
    )
    out = TokenFeatures(
        [], [] if with_labels else None, [], np.zeros(0, np.int64), [], 0, specials.pad
    )
    owners: list[int] = []
    label_ids = {name: i for i, name in enumerate(labels.names)} if with_labels else {}
    for index, (sentence, enc) in enumerate(zip(sentences, encodings, strict=True)):
        tag_ids = np.asarray(_tag_ids(sentence, label_ids, labels)) if with_labels else None
        pieces = _word_pieces(enc.ids, enc.word_ids, len(sentence.words))
        out.unaligned += sum(1 for p in pieces if not p)
        for first, last in _windows([len(p) for p in pieces], max_length - 2):
            ids, word_index = _window(
                pieces, first, last, max_length - 2, specials.cls, specials.sep
            )
            out.input_ids.append(ids)
            out.word_index.append(word_index)
            if tag_ids is not None:
                labelled = word_index >= 0
                row_labels = np.full(len(ids), IGNORE, dtype=np.int64)
                row_labels[labelled] = tag_ids[word_index[labelled]]
                out.labels.append(row_labels)
            owners.append(index)
        out.words_per_sentence.append(len(sentence.words))
    out.sentence = np.asarray(owners, dtype=np.int64)
    return out


def _word_pieces(ids: list[int], word_ids: list[int | None], num_words: int) -> list[list[int]]:
    """The token ids of each word, in order."""
    pieces: list[list[int]] = [[] for _ in range(num_words)]
    for token, word in zip(ids, word_ids, strict=True):
        if word is not None:
            pieces[word].append(token)
    return pieces


def _windows(lengths: list[int], budget: int) -> list[tuple[int, int]]:
    """Word ranges [first, last) whose tokens fit `budget`, cut between words (≥ 1 word each)."""
    windows, first, used = [], 0, 0
    for w, n in enumerate(lengths):
        if used + n > budget and w > first:
            windows.append((first, w))
            first, used = w, 0
        used += n
    windows.append((first, len(lengths)))
    return windows


def _window(
    pieces: list[list[int]], first: int, last: int, budget: int, cls: int, sep: int
) -> tuple[np.ndarray, np.ndarray]:
    """Token ids [CLS] words first..last-1 [SEP], and the word each first sub-word starts (-1)."""
    ids, words = [cls], [-1]
    for w in range(first, last):
        kept = pieces[w][: budget - (len(ids) - 1)]  # only a word longer than `budget` is cut
        ids += kept
        words += [w] + [-1] * (len(kept) - 1) if kept else []
    ids.append(sep)
    words.append(-1)
    return np.asarray(ids, dtype=np.int64), np.asarray(words, dtype=np.int64)


def collate_tagged(
    features: TokenFeatures, rows: Sequence[int], with_labels: bool = True
) -> dict[str, torch.Tensor]:
    """Pad windows `rows` to the longest: pad id in input_ids, IGNORE in labels, 0 in the mask."""
    batch = pad_inputs([features.input_ids[i] for i in rows], features.pad_id)
    if with_labels and features.labels is not None:
        labels = np.full(batch["input_ids"].shape, IGNORE, dtype=np.int64)  # (B, T)
        for row, i in enumerate(rows):
            labels[row, : len(features.labels[i])] = features.labels[i]
        batch["labels"] = torch.from_numpy(labels)
    return batch


# ----------------------------------------------------------------------------- training


def token_classification_loss(
    model: nn.Module, batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy over labelled positions (first sub-words), with their accuracy."""
    logits = model(*(batch[key] for key in INPUT_KEYS))  # (B, T, C)
    labels = batch["labels"]  # (B, T)
    loss = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE)
    scored = labels != IGNORE
    hits = (logits.argmax(dim=-1) == labels) & scored
    return loss, {"acc": hits.sum().item() / max(1, scored.sum().item())}


# ----------------------------------------------------------------------------- predicting


def predict_tags(
    model: nn.Module,
    features: TokenFeatures,
    labels: LabelSet,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> list[list[str]]:
    """One tag per word of every sentence (first sub-word's argmax; "O" for unaligned words)."""
    tags = [[OUTSIDE] * n for n in features.words_per_sentence]
    collate = functools.partial(collate_tagged, features, with_labels=False)
    lengths = [len(ids) for ids in features.input_ids]
    for rows, logits in predict_batches(model, lengths, batch_size, collate, device):
        best = logits.argmax(dim=-1).cpu().numpy()  # (B, T) from (B, T, C)
        for row, i in enumerate(rows):
            words = features.word_index[i]
            sentence_tags = tags[features.sentence[i]]
            for position in np.flatnonzero(words >= 0):
                sentence_tags[words[position]] = labels.names[best[row, position]]
    return tags


class Entity(NamedTuple):
    """An entity of a sentence: its type, character span [start, end) in the text, and that text."""

    type: str
    start: int
    end: int
    text: str


def sentence_entities(sentence: TaggedSentence, tags: Sequence[str]) -> list[Entity]:
    """Entities of word `tags` (any scheme) with exact character offsets into `sentence.text`."""
    if len(tags) != len(sentence.words):
        raise ValueError(f"{len(tags)} tags for {len(sentence.words)} words")
    offsets, text = sentence.word_offsets(), sentence.text
    out = []
    for span in tags_to_spans(tags):
        start, end = offsets[span.start][0], offsets[span.end - 1][1]
        out.append(Entity(span.type, start, end, text[start:end]))
    return out


# ----------------------------------------------------------------------------- scoring


def ner_metrics(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, float]:
    """Entity-level micro precision/recall/F1 (seqeval), plus F1 per type as TYPE_f1."""
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    if len(gold) != len(pred):
        raise ValueError(f"{len(pred)} predicted sentences for {len(gold)} gold sentences")
    if not gold:
        raise ValueError("no sentences to score")
    gold_bio = [convert_tags(tags, "bio") for tags in gold]
    pred_bio = [convert_tags(tags, "bio") for tags in pred]
    # Both sides are well-formed BIO built from spans, so strict IOB2 counts our spans exactly.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no entities at all: NumPy warns, the scores are 0
        report = classification_report(
            gold_bio, pred_bio, mode="strict", scheme=IOB2, output_dict=True, zero_division=0
        )
    micro = report["micro avg"]
    out = {"precision": micro["precision"], "recall": micro["recall"], "f1": micro["f1-score"]}
    for name, row in report.items():
        if " avg" not in name:
            out[f"{name}_f1"] = row["f1-score"]
    return {key: float(value) for key, value in out.items()}
