"""T5's pretraining objective: span corruption over windows of the packed token stream.

It follows the paper: 15% of a window's tokens, in spans of mean length 3, each span replaced
by one sentinel in the input and spelled out after it in the target. Windows come from
stream.py's `PackedStream` with a resumable NumPy generator, and the loss is the same
token-level cross-entropy as the causal LM's.

Key choice: the raw window length is chosen so that the corrupted input fits seq_len, so a
batch needs almost no padding. The cost is that each example's raw length is fixed by
seq_len, noise density and mean span (`span_corruption_lengths`), not by the data.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from plmkit.models.seq2seq import shift_right
from plmkit.objectives.clm import PackedStream, _token_loss
from plmkit.runtime.errors import UserError
from plmkit.text.shards import ShardReader


def span_counts(length: int, noise_density: float, mean_span: float) -> tuple[int, int]:
    """(noise tokens, noise spans) T5 corrupts in `length` tokens."""
    noise = min(max(round(length * noise_density), 1), length - 1)
    return noise, max(round(noise / mean_span), 1)


def span_corruption_lengths(
    seq_len: int, noise_density: float, mean_span: float
) -> tuple[int, int]:
    """(raw tokens per example, target length): the longest raw window whose corrupted input
    (kept tokens, one sentinel per span, eos) fits in seq_len, as T5 chooses it."""

    def input_length(raw: int) -> int:
        noise, spans = span_counts(raw, noise_density, mean_span)
        return raw - noise + spans + 1

    raw = 2
    while input_length(raw + 1) <= seq_len:
        raw += 1
    if input_length(raw) > seq_len:
        raise UserError(f"seq_len {seq_len} is too short for span corruption (at least 4)")
    noise, spans = span_counts(raw, noise_density, mean_span)
    return raw, noise + spans + 1


def span_noise_mask(
    length: int, noise_density: float, mean_span: float, rng: np.random.Generator
) -> np.ndarray:
    """bool (length,), True = noise: kept and noise spans alternate, starting with kept (as T5);
    each kind's span lengths are a uniformly random composition of its token count."""
    noise, spans = span_counts(length, noise_density, mean_span)
    if length - noise < spans:
        raise ValueError(
            f"noise_density {noise_density} leaves too few kept tokens to separate spans"
        )

    def composition(total: int) -> np.ndarray:  # `spans` positive integers summing to `total`
        cuts = np.sort(rng.choice(total - 1, size=spans - 1, replace=False)) + 1
        return np.diff(np.concatenate([[0], cuts, [total]]))

    lengths = np.stack([composition(length - noise), composition(noise)], axis=1)  # (spans, 2)
    return np.repeat(np.tile([False, True], spans), lengths.reshape(-1))


def corrupt_spans(
    tokens: np.ndarray, noise: np.ndarray, sentinels: np.ndarray, eos_id: int
) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets): noise span k becomes sentinel k in the inputs; the targets list each
    sentinel k followed by span k. Both end with eos."""
    starts = noise & ~np.concatenate([[False], noise[:-1]])  # (L,) first token of each span
    span = np.cumsum(starts) - 1  # (L,) index of the latest span start
    inputs = np.where(starts, sentinels[span], tokens)[~noise | starts]
    targets = np.insert(tokens[noise], np.flatnonzero(starts[noise]), sentinels[: starts.sum()])
    return np.append(inputs, eos_id), np.append(targets, eos_id)


class SpanCorruptionBatches:
    """An endless, resumable source of T5 span-corruption batches from random stream windows.

    Each example takes the raw window length that `span_corruption_lengths` fits to seq_len,
    so inputs fill seq_len (padding covers a one-token shortfall) and targets are about a
    fifth of it. Batches carry decoder_input_ids (targets shifted right, pad first) and labels
    with -100 on padding, the convention Transformers' T5 uses too.
    """

    def __init__(
        self,
        reader: ShardReader,
        *,
        sentinel_ids: Sequence[int],
        eos_id: int,
        pad_id: int,
        batch_size: int,
        seq_len: int,
        noise_density: float = 0.15,
        mean_span: float = 3.0,
        seed: int | list[int] = 0,  # a list: one rank's stream (runtime.processes.data_seed)
    ) -> None:
        self.stream = PackedStream(reader, eos_id)
        self.raw_len, self.target_len = span_corruption_lengths(seq_len, noise_density, mean_span)
        if self.stream.length < self.raw_len:
            raise UserError(
                f"shards hold {self.stream.length} tokens (with eos); "
                f"seq_len {seq_len} needs {self.raw_len}"
            )
        spans = span_counts(self.raw_len, noise_density, mean_span)[1]
        if len(sentinel_ids) < spans:
            raise UserError(
                f"seq_len {seq_len} needs {spans} sentinel ids, the tokenizer has "
                f"{len(sentinel_ids)}"
            )
        self.sentinels = np.asarray(sentinel_ids, dtype=np.int64)
        self.eos_id, self.pad_id = eos_id, pad_id
        self.batch_size, self.seq_len = batch_size, seq_len
        self.noise_density, self.mean_span = noise_density, mean_span
        self.rng = np.random.Generator(np.random.PCG64(seed))

    def next_batch(self, progress: float) -> dict[str, torch.Tensor]:
        """input_ids, attention_mask (B, seq_len); decoder_input_ids, labels (B, target_len)."""
        offsets = self.rng.integers(0, self.stream.length - self.raw_len + 1, size=self.batch_size)
        raw = self.stream.windows(offsets, self.raw_len)  # (B, L)
        inputs = np.full((self.batch_size, self.seq_len), self.pad_id, dtype=np.int64)
        labels = np.full((self.batch_size, self.target_len), -100, dtype=np.int64)
        for row, tokens in enumerate(raw):
            noise = span_noise_mask(self.raw_len, self.noise_density, self.mean_span, self.rng)
            source, target = corrupt_spans(tokens, noise, self.sentinels, self.eos_id)
            inputs[row, : len(source)] = source
            labels[row, : len(target)] = target
        labels_t = torch.from_numpy(labels)
        # The span tokens alone: sentinels and eos sit where the layout puts them, so accuracy
        # over all labels hides a model that has not yet learned to fill a span.
        layout = np.isin(labels, self.sentinels) | (labels == self.eos_id)
        return {
            "input_ids": torch.from_numpy(inputs),
            "attention_mask": torch.from_numpy((inputs != self.pad_id).astype(np.int64)),
            "decoder_input_ids": shift_right(labels_t, self.pad_id),
            "labels": labels_t,
            "span_labels": torch.from_numpy(np.where(layout, -100, labels)),
        }

    def state_dict(self) -> dict:
        """The generator state is the whole data cursor."""
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        """Continue exactly where `state_dict` was taken."""
        self.rng.bit_generator.state = state["rng"]


def span_corruption_loss(
    model: nn.Module, batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, dict[str, float]]:
    """Teacher-forced cross-entropy of an encoder-decoder on the span targets, padding ignored;
    span_acc is the accuracy on the span tokens alone (not sentinels or eos)."""
    logits = model(batch["input_ids"], batch["attention_mask"], batch["decoder_input_ids"])
    loss, metrics = _token_loss(logits, batch["labels"])
    span = batch["span_labels"]
    hits = ((logits.argmax(-1) == span) & (span != -100)).sum()
    return loss, {**metrics, "span_acc": hits / (span != -100).sum().clamp_min(1)}
