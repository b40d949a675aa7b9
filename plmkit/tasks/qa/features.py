"""Extractive question answering: questions over contexts → windows → span scores → answers.

Where it sits: a stage reads SQuAD or CMRC files with tasks/qa/data.py `read_qa`, tokenizes once
with `encode_qa`, and hands tasks/sampling.py `SampledBatches` over `collate_qa`, and `span_loss`,
to the one trainer; `predict_spans` runs a model over the windows, `decode_answers` turns span
scores into answer texts, and tasks/qa/scores.py `qa_metrics` scores them. A reader model is any
`nn.Module` called as `model(input_ids, attention_mask, token_type_ids)` that returns (start,
end) logits, each (B, T).

Key choices and their cost:
- Each question is encoded with its context as a pair, question first; a context too long for
  `max_length` is cut into windows by the tokenizer's own overflow, consecutive windows sharing
  `stride` tokens, and the offset mapping gives every context token its characters. Answers are
  therefore exact slices of the original context, on CJK text too. The question is cut to
  `max_question_length` tokens first, so that every window has room for context.
- A training window whose context does not hold the whole answer (and every window of an
  unanswerable question) is labelled with [CLS] at position 0, BERT's convention for "no answer
  here"; answers that tasks/qa/data.py could not locate are never targets.
- Decoding scores every (start, end) pair of context tokens with end ≥ start and at most
  `max_answer_length` tokens, over all windows, as an exact n-best list: a T×T score matrix per
  window (T ≤ 512: a quarter million floats), instead of the usual top-20 starts × top-20 ends
  shortcut, so the best span is never missed and never crosses the question or leaves the
  context. The no-answer score is the smallest [CLS] start+end score over the question's windows.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Encoding, Tokenizer
from torch import nn

from plmkit.runtime.errors import UserError
from plmkit.tasks.qa.data import QAExample
from plmkit.tasks.sampling import INPUT_KEYS, pad_inputs, predict_batches
from plmkit.text.tokenizer import configured

NO_CHAR = -1  # offset of a token outside the context (question, specials, padding)


# ----------------------------------------------------------------------------- windows


@dataclass
class QAFeatures:
    """Encoded windows, unpadded, with the characters of their context tokens."""

    input_ids: list[np.ndarray]
    token_type_ids: list[np.ndarray]
    char_spans: list[np.ndarray]  # per window (T, 2): [start, end) in the context, NO_CHAR if none
    example: np.ndarray  # (F,) the example each window belongs to
    starts: np.ndarray | None  # (F,) target start token (0 = [CLS]: no answer in this window)
    ends: np.ndarray | None
    pad_id: int
    skipped: int = 0  # training examples with no locatable answer: no windows made

    def __len__(self) -> int:
        return len(self.input_ids)


def encode_qa(
    tokenizer: Tokenizer,
    examples: Sequence[QAExample],
    *,
    max_length: int = 384,
    stride: int = 128,
    max_question_length: int = 64,
    training: bool = False,
) -> QAFeatures:
    """Windows of question + context; with `training`, start/end targets from the first located answer."""
    if max_length - max_question_length - 3 <= stride:
        raise UserError(
            f"max_length={max_length} leaves no room for context windows that advance: it must "
            f"exceed max_question_length ({max_question_length}) + stride ({stride}) + 3 specials"
        )
    if tokenizer.post_processor is None:
        raise UserError("the tokenizer has no post-processor to add [CLS] and [SEP]")
    pad_id = tokenizer.token_to_id("[PAD]")
    questions = _short_questions(configured(tokenizer), [ex.question for ex in examples],
                                 max_question_length)
    work = configured(tokenizer, max_length, "only_second", stride)
    out = QAFeatures([], [], [], np.zeros(0, np.int64), None, None, 0 if pad_id is None else pad_id)
    owners, starts, ends = [], [], []
    encodings = work.encode_batch(
        list(zip(questions, [ex.context for ex in examples], strict=True))
    )
    for index, (example, first) in enumerate(zip(examples, encodings, strict=True)):
        target = _target(example) if training else None
        if training and target is None and not example.impossible:
            out.skipped += 1
            continue
        for enc in [first, *first.overflowing]:
            spans = _context_char_spans(enc)
            out.input_ids.append(np.asarray(enc.ids, dtype=np.int64))
            out.token_type_ids.append(np.asarray(enc.type_ids, dtype=np.int64))
            out.char_spans.append(spans)
            owners.append(index)
            start, end = _token_target(spans, target) if target else (0, 0)
            starts.append(start)
            ends.append(end)
    out.example = np.asarray(owners, dtype=np.int64)
    if training:
        out.starts, out.ends = np.asarray(starts, np.int64), np.asarray(ends, np.int64)
    return out


def _short_questions(tokenizer: Tokenizer, questions: list[str], limit: int) -> list[str]:
    """Each question cut after its `limit`-th token (at that token's last character)."""
    encodings = tokenizer.encode_batch(questions, add_special_tokens=False)
    return [
        q if len(e.ids) <= limit else q[: e.offsets[limit - 1][1]]
        for q, e in zip(questions, encodings, strict=True)
    ]


def _context_char_spans(enc: Encoding) -> np.ndarray:
    """(T, 2) character span in the context of every context token; NO_CHAR elsewhere."""
    spans = np.full((len(enc.ids), 2), NO_CHAR, dtype=np.int64)
    for t, (sequence, offsets) in enumerate(zip(enc.sequence_ids, enc.offsets, strict=True)):
        if sequence == 1:
            spans[t] = offsets
    return spans


def _target(example: QAExample) -> tuple[int, int] | None:
    """[start, end) characters of the first located answer, None when there is none."""
    for answer in example.answers:
        if answer.start is not None and answer.text:
            return answer.start, answer.start + len(answer.text)
    return None


def _token_target(spans: np.ndarray, target: tuple[int, int]) -> tuple[int, int]:
    """First and last token of the answer when this window's context holds all of it; else (0, 0)."""
    context = np.flatnonzero(spans[:, 0] != NO_CHAR)
    if len(context) == 0:
        return 0, 0
    char_start, char_end = target
    if spans[context[0], 0] > char_start or spans[context[-1], 1] < char_end:
        return 0, 0
    start = context[spans[context, 1] > char_start][0]  # first token ending after the start
    end = context[spans[context, 0] < char_end][-1]  # last token beginning before the end
    return (int(start), int(end)) if start <= end else (0, 0)  # (an all-whitespace answer)


# ----------------------------------------------------------------------------- training


def collate_qa(
    features: QAFeatures, rows: Sequence[int], with_targets: bool = True
) -> dict[str, torch.Tensor]:
    """Pad windows `rows` to the longest: pad id in input_ids, 0 in the mask and type ids."""
    batch = pad_inputs([features.input_ids[i] for i in rows], features.pad_id,
                       [features.token_type_ids[i] for i in rows])
    if with_targets and features.starts is not None:
        index = np.asarray(rows, dtype=np.int64)
        batch["start_positions"] = torch.from_numpy(features.starts[index])
        batch["end_positions"] = torch.from_numpy(features.ends[index])
    return batch


def span_loss(
    model: nn.Module, batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean of the start and end cross-entropies, with the share of windows where both are right."""
    start, end = model(*(batch[key] for key in INPUT_KEYS))  # (B, T) each
    padding = batch["attention_mask"] == 0
    start = start.float().masked_fill(padding, float("-inf"))
    end = end.float().masked_fill(padding, float("-inf"))
    gold_start, gold_end = batch["start_positions"], batch["end_positions"]
    loss = (F.cross_entropy(start, gold_start) + F.cross_entropy(end, gold_end)) / 2
    both = (start.argmax(-1) == gold_start) & (end.argmax(-1) == gold_end)
    return loss, {"span_acc": both.float().mean().item()}


# ----------------------------------------------------------------------------- predicting


def predict_spans(
    model: nn.Module, features: QAFeatures, batch_size: int = 32, device: str | torch.device = "cpu"
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(start, end) logits of every window, unpadded, in window order; eval mode, no grad."""
    out: list[tuple[np.ndarray, np.ndarray]] = [(np.zeros(0), np.zeros(0))] * len(features)
    collate = functools.partial(collate_qa, features, with_targets=False)
    lengths = [len(ids) for ids in features.input_ids]
    for rows, (start, end) in predict_batches(model, lengths, batch_size, collate, device):
        start, end = start.float().cpu().numpy(), end.float().cpu().numpy()  # (B, T) each
        for row, i in enumerate(rows):
            n = len(features.input_ids[i])
            out[i] = (start[row, :n], end[row, :n])
    return out


# ----------------------------------------------------------------------------- decoding


@dataclass(frozen=True)
class SpanCandidate:
    """A possible answer: its text and [start, end) characters in the context, and its score."""

    text: str
    start: int
    end: int
    score: float  # start logit + end logit


@dataclass(frozen=True)
class QAPrediction:
    """The answer to one question ("" = no answer), its n-best list and the no-answer score."""

    text: str
    start: int | None
    end: int | None
    score: float
    null_score: float
    n_best: tuple[SpanCandidate, ...]


def best_spans(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    context: np.ndarray,
    n_best: int,
    max_answer_length: int,
) -> list[tuple[float, int, int]]:
    """The `n_best` highest (score, first token, last token) spans inside one run of context
    tokens (`context`: bool (T,)), at most `max_answer_length` tokens long, best first."""
    positions = np.flatnonzero(context)  # (C,)
    if len(positions) == 0 or n_best < 1:
        return []
    scores = start_logits[positions][:, None] + end_logits[positions][None, :]  # (C, C)
    first, last = np.indices(scores.shape)  # (C, C) each: indices into positions
    valid = (last >= first) & (last - first < max_answer_length)
    # Every token between first and last must be context too: a span never crosses the question.
    valid &= positions[last] - positions[first] == last - first
    flat = np.where(valid, scores, -np.inf).reshape(-1)
    count = min(n_best, int(valid.sum()))
    if count == 0:
        return []
    top = np.argpartition(-flat, count - 1)[:count]
    top = top[np.argsort(-flat[top], kind="stable")]
    rows, cols = np.unravel_index(top, scores.shape)
    return [
        (float(flat[k]), int(positions[r]), int(positions[c]))
        for k, r, c in zip(top, rows, cols, strict=True)
    ]


def decode_answers(
    examples: Sequence[QAExample],
    features: QAFeatures,
    logits: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    n_best: int = 20,
    max_answer_length: int = 30,
    allow_null: bool = False,
    null_threshold: float = 0.0,
) -> dict[str, QAPrediction]:
    """Answer text per question id from window logits; with `allow_null` (SQuAD v2), ""
    when the no-answer score beats the best span's by more than `null_threshold`."""
    if len(logits) != len(features):
        raise ValueError(f"{len(logits)} logit pairs for {len(features)} windows")
    by_example: dict[int, list[int]] = {}
    for window, index in enumerate(features.example):
        by_example.setdefault(int(index), []).append(window)
    out = {}
    for index, example in enumerate(examples):
        candidates: dict[tuple[int, int], float] = {}  # (char start, char end) → best score
        null_score = np.inf
        for window in by_example.get(index, []):
            start, end = logits[window]
            spans = features.char_spans[window]
            null_score = min(null_score, float(start[0] + end[0]))
            context = spans[:, 0] != NO_CHAR
            for score, first, last in best_spans(start, end, context, n_best, max_answer_length):
                key = (int(spans[first, 0]), int(spans[last, 1]))
                candidates[key] = max(score, candidates.get(key, -np.inf))
        ranked = sorted(candidates.items(), key=lambda item: -item[1])[:n_best]
        n_best_list = tuple(SpanCandidate(example.context[a:b], a, b, s) for (a, b), s in ranked)
        null_score = float(null_score) if np.isfinite(null_score) else -np.inf
        best = n_best_list[0] if n_best_list else None
        if best is None or (allow_null and null_score - best.score > null_threshold):
            out[example.qid] = QAPrediction(
                "", None, None, -np.inf if best is None else best.score, null_score, n_best_list
            )
        else:
            out[example.qid] = QAPrediction(
                best.text, best.start, best.end, best.score, null_score, n_best_list
            )
    return out
