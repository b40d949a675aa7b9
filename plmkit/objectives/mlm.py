"""BERT's pretraining objective: masked language modelling (MLM) plus next sentence prediction
(NSP), from token shards to batches to loss.

Batches are drawn with replacement from the memory-mapped shards by a NumPy generator
whose state *is* the data cursor, so exact resume needs only that state. An example starts
at a random sentence (so long documents are sampled in proportion to their length) and takes
whole sentences up to the sequence length; with NSP, segment B is the true continuation half
the time and a random stretch of another document otherwise (label 1, as in Transformers).

MLM follows the BERT paper: `mask_prob` of the non-special tokens are chosen (optionally
whole words), 80% become [MASK], 10% a random token, 10% stay. The loss is computed only on
the chosen positions: the batch carries their flat indices and the model gathers those rows
before the vocabulary projection, which on CPU is 1.4–2.8× faster than projecting every token.
The cost is a model whose forward takes those positions (models/encoder.py's
`PretrainingModel`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from plmkit.text.shards import ShardReader
from plmkit.text.tokenizer import SpecialIds

WORD_BIT = 32  # inside a batch being built, bit 32 of a token id says "a word starts here"


@dataclass
class MaskingSpec:
    """What masking needs to know about the vocabulary."""

    special: SpecialIds
    vocab_size: int
    mask_prob: float = 0.15
    continuation: np.ndarray | None = None  # bool per token id: "##" pieces (whole-word masking)
    word_boundaries: bool = False  # whole words from the shards' word starts (prepare word_boundaries=jieba)

    def __post_init__(self) -> None:
        # The 10% random replacements never draw a special token (their ids vary by vocabulary).
        self.replacement_ids = np.setdiff1d(np.arange(self.vocab_size), np.asarray(self.special))


class PretrainBatches:
    """An endless, resumable source of MLM (+ NSP) batches drawn from one shard split."""

    def __init__(
        self,
        reader: ShardReader,
        masking: MaskingSpec,
        *,
        batch_size: int,
        seq_len: int,
        short_seq_len: int = 0,
        short_seq_fraction: float = 0.0,
        nsp: bool = True,
        seed: int | list[int] = 0,  # a list: one rank's stream (runtime.processes.data_seed)
    ) -> None:
        self.reader = reader
        self.masking = masking
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.short_seq_len = short_seq_len
        self.short_seq_fraction = short_seq_fraction
        self.nsp = nsp
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.sentence_starts = np.asarray(reader.sentence_starts)
        self.doc_starts = np.asarray(reader.doc_starts)

    # -- BatchSource protocol
    def next_batch(self, progress: float) -> dict[str, torch.Tensor]:
        """One batch; the first `short_seq_fraction` of the run uses `short_seq_len`, MLM only.

        NSP waits for full length: a short example's two segments are mostly halves of one
        sentence, and the extra task slowed MLM's escape from its plateau (600 steps at length
        32 on the demo's data: MLM loss 6.58 with NSP, 6.26 without).
        """
        short = self.short_seq_len > 0 and progress < self.short_seq_fraction
        seq_len = self.short_seq_len if short else self.seq_len
        nsp = self.nsp and not short
        examples = [self._example(seq_len, nsp) for _ in range(self.batch_size)]
        return collate(examples, self.masking, self.rng, with_nsp=nsp)

    def state_dict(self) -> dict:
        """The generator state is the whole data cursor."""
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        """Continue exactly where `state_dict` was taken."""
        self.rng.bit_generator.state = state["rng"]

    # -- building one example
    def _example(self, seq_len: int, nsp: bool) -> tuple[list[int], list[int], int]:
        """(segment A, segment B, nsp label); B is empty without NSP."""
        budget = seq_len - (3 if nsp else 2)
        sentence = int(self.rng.integers(self.reader.num_sentences))
        doc = self._doc_of(sentence)
        chunk = self._take_sentences(sentence, doc, budget)
        if not nsp:
            return _flatten(chunk)[:budget], [], 0
        if len(chunk) > 1:  # split between sentences, as BERT does
            split = int(self.rng.integers(1, len(chunk)))
            segment_a, true_next = _flatten(chunk[:split]), _flatten(chunk[split:])
        else:  # one sentence longer than the budget (common at short lengths): split inside it
            tokens = _flatten(chunk)[:budget]
            cut = int(self.rng.integers(1, len(tokens))) if len(tokens) > 1 else len(tokens)
            segment_a, true_next = tokens[:cut], tokens[cut:]
        if not true_next or self.rng.random() < 0.5:
            segment_b, label = self._random_segment(doc, budget - len(segment_a)), 1
        else:
            segment_b, label = true_next, 0
        segment_a, segment_b = _truncate_pair(segment_a, segment_b, budget)
        return segment_a, segment_b, label

    def _doc_of(self, sentence: int) -> int:
        return int(np.searchsorted(self.doc_starts, sentence, side="right") - 1)

    def _take_sentences(self, first: int, doc: int, budget: int) -> list[np.ndarray]:
        """Consecutive sentences of `doc` from `first` until `budget` tokens are reached."""
        end = int(self.doc_starts[doc + 1])
        chunk, total = [], 0
        for s in range(first, end):
            first_token, end_token = self.sentence_starts[s], self.sentence_starts[s + 1]
            tokens = self.reader.tokens[first_token:end_token]
            if self.masking.word_boundaries:  # each id carries its word-start bit above bit 32
                starts = self.reader.words[first_token:end_token].astype(np.int64)
                tokens = tokens.astype(np.int64) | (starts << WORD_BIT)
            chunk.append(tokens)
            total += len(tokens)
            if total >= budget:
                break
        return chunk

    def _random_segment(self, avoid_doc: int, budget: int) -> list[int]:
        """Sentences from a random place in another document (any document if there is one)."""
        budget = max(budget, 1)
        for _ in range(10):
            sentence = int(self.rng.integers(self.reader.num_sentences))
            doc = self._doc_of(sentence)
            if doc != avoid_doc or self.reader.num_documents == 1:
                break
        return _flatten(self._take_sentences(sentence, doc, budget))[:budget]


def _flatten(chunk: list[np.ndarray]) -> list[int]:
    return np.concatenate(chunk).tolist() if chunk else []


def _truncate_pair(a: list[int], b: list[int], budget: int) -> tuple[list[int], list[int]]:
    """Trim the longer segment from its end until both fit, keeping at least one token each."""
    while len(a) + len(b) > budget:
        if len(a) >= len(b) and len(a) > 1:
            a = a[:-1]
        elif len(b) > 1:
            b = b[:-1]
        else:
            a = a[:-1]
    return a, b


def collate(
    examples: list[tuple[list[int], list[int], int]],
    masking: MaskingSpec,
    rng: np.random.Generator,
    *,
    with_nsp: bool = True,
) -> dict[str, torch.Tensor]:
    """Add [CLS]/[SEP], pad to the longest, and mask; returns the model's inputs and targets."""
    sp = masking.special
    rows, types = [], []
    for a, b, _ in examples:
        ids = [sp.cls, *a, sp.sep] + ([*b, sp.sep] if b else [])
        rows.append(ids)
        types.append([0] * (len(a) + 2) + [1] * (len(b) + 1 if b else 0))
    width = max(len(r) for r in rows)
    input_ids = np.full((len(rows), width), sp.pad, dtype=np.int64)
    token_type_ids = np.zeros_like(input_ids)
    for i, (ids, tt) in enumerate(zip(rows, types)):
        input_ids[i, : len(ids)] = ids
        token_type_ids[i, : len(tt)] = tt
    word_starts = None
    if masking.word_boundaries:
        word_starts = (input_ids >> WORD_BIT).astype(bool)
        input_ids &= (1 << WORD_BIT) - 1
    attention_mask = (input_ids != sp.pad).astype(np.int64)
    masked_ids, positions, labels = mask_tokens(input_ids, masking, rng, word_starts)
    batch = {
        "input_ids": torch.from_numpy(masked_ids),
        "attention_mask": torch.from_numpy(attention_mask),
        "token_type_ids": torch.from_numpy(token_type_ids),
        "mlm_positions": torch.from_numpy(positions),
        "mlm_labels": torch.from_numpy(labels),
    }
    if with_nsp:
        batch["nsp_labels"] = torch.tensor([label for _, _, label in examples], dtype=torch.long)
    return batch


def mask_tokens(
    input_ids: np.ndarray,
    masking: MaskingSpec,
    rng: np.random.Generator,
    word_starts: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BERT masking of a (B, T) array → (masked ids, flat positions, original ids there).

    Whole-word masking (word_starts (B, T) from the shards, or the "##" continuation pieces)
    chooses whole words and decides 80/10/10 once per word, so a word is masked, replaced or
    kept as one; otherwise each token is chosen and decided alone."""
    sp = masking.special
    special = np.isin(input_ids, [sp.pad, sp.cls, sp.sep, sp.mask])
    whole = word_starts is not None or masking.continuation is not None
    chosen = np.zeros(input_ids.shape, dtype=bool)
    word_of = np.full(input_ids.shape, -1, dtype=np.int64)  # a word number per chosen position
    words = 0
    for row in range(input_ids.shape[0]):
        candidates = np.flatnonzero(~special[row])
        if len(candidates) == 0:
            continue
        count = max(1, int(round(masking.mask_prob * len(candidates))))
        if not whole:
            chosen[row, rng.choice(candidates, size=count, replace=False)] = True
            continue
        if word_starts is not None:
            is_start = word_starts[row, candidates]
        else:
            is_start = ~masking.continuation[input_ids[row, candidates]]
        is_start[0] = True
        for word in _pick_words(candidates, is_start, count, rng):
            chosen[row, word] = True
            word_of[row, word] = words
            words += 1
    positions = np.flatnonzero(chosen.reshape(-1))
    labels = input_ids.reshape(-1)[positions].copy()
    masked = input_ids.copy().reshape(-1)
    roll = rng.random(words)[word_of.reshape(-1)[positions]] if whole else rng.random(len(positions))
    to_mask = roll < 0.8
    to_random = (roll >= 0.8) & (roll < 0.9)
    masked[positions[to_mask]] = sp.mask
    pool = masking.replacement_ids
    masked[positions[to_random]] = pool[rng.integers(len(pool), size=int(to_random.sum()))]
    return masked.reshape(input_ids.shape), positions.astype(np.int64), labels.astype(np.int64)


def _pick_words(candidates: np.ndarray, is_start: np.ndarray, count: int,
                rng: np.random.Generator) -> list[np.ndarray]:
    """Whole words (runs of positions from one start to the next), in random order, until they
    hold at least `count` positions."""
    words = np.split(candidates, np.flatnonzero(is_start)[1:])
    picked, total = [], 0
    for w in rng.permutation(len(words)):
        if total >= count:
            break
        picked.append(words[w])
        total += len(words[w])
    return picked


def pretrain_loss(
    model: nn.Module, batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """MLM cross-entropy on the masked positions, plus NSP cross-entropy when the batch has it.
    Metrics stay on the device (0-dim tensors): no host sync per step; the log reads them."""
    out = model(
        batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], batch["mlm_positions"]
    )
    mlm_loss = F.cross_entropy(out.mlm_logits.float(), batch["mlm_labels"])
    metrics = {
        "mlm_loss": mlm_loss.detach(),
        "mlm_acc": (out.mlm_logits.argmax(-1) == batch["mlm_labels"]).float().mean(),
    }
    loss = mlm_loss
    if "nsp_labels" in batch:
        nsp_loss = F.cross_entropy(out.nsp_logits.float(), batch["nsp_labels"])
        loss = loss + nsp_loss
        metrics["nsp_loss"] = nsp_loss.detach()
        metrics["nsp_acc"] = (out.nsp_logits.argmax(-1) == batch["nsp_labels"]).float().mean()
    return loss, metrics


@torch.no_grad()
def evaluate_pretraining(
    model: nn.Module,
    batches: list[dict[str, torch.Tensor]],
    device: torch.device,
    loss_fn: Callable[[nn.Module, dict[str, torch.Tensor]], tuple[torch.Tensor, dict]] | None = None,
) -> dict[str, float]:
    """Mean metrics of `loss_fn` (default `pretrain_loss`: MLM loss / accuracy, and NSP's) over
    fixed held-out batches, in eval mode; ELECTRA's loss is scored the same way."""
    loss_fn = loss_fn or pretrain_loss
    was_training = model.training
    model.eval()
    totals: dict[str, float] = {}
    for batch in batches:
        batch = {k: v.to(device) for k, v in batch.items()}
        _, metrics = loss_fn(model, batch)
        for k, v in metrics.items():
            totals[k] = totals.get(k, 0.0) + float(v) / len(batches)
    model.train(was_training)
    return {f"val_{k}": v for k, v in totals.items()}
