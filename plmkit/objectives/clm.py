"""The packed token stream GPT and T5 read, the causal LM objective, and the evaluation both
LM objectives share.

GPT and T5 read the shards as one stream, documents back to back with eos between them, and
cut random windows from it with a resumable NumPy generator (its state is the data cursor).
`PackedStream` is that view, computed from the document index without copying a token;
`CausalLMBatches` draws next-token windows from it, and span.py draws T5's windows.
`causal_lm_loss` and span.py's loss share the token-level cross-entropy here, and
`evaluate_lm` reports either one as loss, accuracy and perplexity.

Key choice: windows cross document boundaries (marked by eos) with no padding and no mask, as
in GPT-2's training; the cost is some context from an unrelated document.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from plmkit.runtime.errors import UserError
from plmkit.text.shards import ShardReader


class PackedStream:
    """One split's documents back to back, each followed by `eos`: what GPT and T5 batches read.

    Nothing is copied: a window of stream positions maps to token indices through the document
    starts, and the slot just past each document reads as `eos`.
    """

    def __init__(self, reader: ShardReader, eos_id: int) -> None:
        sentence_starts = np.asarray(reader.sentence_starts)
        self.doc_tokens = sentence_starts[np.asarray(reader.doc_starts)]  # (D + 1,) token offsets
        self.doc_starts = self.doc_tokens + np.arange(len(self.doc_tokens))  # (D + 1,) in stream
        self.length = int(reader.num_tokens + reader.num_documents)
        self.tokens = reader.tokens
        self.eos_id = eos_id

    def windows(self, offsets: np.ndarray, width: int) -> np.ndarray:
        """Stream positions offsets[b] … offsets[b] + width − 1 → int64 (B, width)."""
        position = offsets[:, None] + np.arange(width)  # (B, W)
        doc = np.searchsorted(self.doc_starts, position, side="right") - 1  # (B, W)
        index = self.doc_tokens[doc] + (position - self.doc_starts[doc])  # (B, W) token index
        is_eos = index == self.doc_tokens[doc + 1]  # one past the document's last token
        out = self.tokens[np.minimum(index, len(self.tokens) - 1)].astype(np.int64)
        out[is_eos] = self.eos_id
        return out


class CausalLMBatches:
    """An endless, resumable source of next-token batches: random windows of seq_len + 1 tokens.

    As in GPT-2's training, windows cross document boundaries (marked by eos) and attend across
    them: no padding and no mask, at the cost of some context from an unrelated document.
    """

    def __init__(
        self,
        reader: ShardReader,
        *,
        eos_id: int,
        batch_size: int,
        seq_len: int,
        seed: int | list[int] = 0,
    ) -> None:
        self.stream = PackedStream(reader, eos_id)
        if self.stream.length < seq_len + 1:
            raise UserError(
                f"shards hold {self.stream.length} tokens (with eos); "
                f"seq_len {seq_len} needs at least {seq_len + 1}"
            )
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.rng = np.random.Generator(np.random.PCG64(seed))

    def next_batch(self, progress: float) -> dict[str, torch.Tensor]:
        """input_ids (B, T) and labels (B, T), the same window shifted by one token."""
        offsets = self.rng.integers(0, self.stream.length - self.seq_len, size=self.batch_size)
        window = torch.from_numpy(self.stream.windows(offsets, self.seq_len + 1))  # (B, T + 1)
        return {"input_ids": window[:, :-1].contiguous(), "labels": window[:, 1:].contiguous()}

    def state_dict(self) -> dict:
        """The generator state is the whole data cursor."""
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        """Continue exactly where `state_dict` was taken."""
        self.rng.bit_generator.state = state["rng"]


def _token_loss(
    logits: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Mean cross-entropy over labels (B, T) ≠ -100, and next-token accuracy there; metrics stay
    on the device (no host sync per step)."""
    # float() first: it makes the contiguous fp32 copy that flatten can then view (a GPT with a
    # padded vocabulary hands over a strided (B, T, V) slice)
    loss = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100)
    real = labels != -100
    hits = ((logits.argmax(-1) == labels) & real).sum()
    acc = hits / real.sum().clamp_min(1)
    return loss, {"lm_loss": loss.detach(), "lm_acc": acc}


def causal_lm_loss(
    model: nn.Module, batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, dict[str, float]]:
    """Next-token cross-entropy of a decoder (`model(input_ids) → logits (B, T, V)`)."""
    return _token_loss(model(batch["input_ids"]), batch["labels"])


@torch.no_grad()
def evaluate_lm(
    model: nn.Module,
    batches: list[dict[str, torch.Tensor]],
    loss_fn: Callable[[nn.Module, dict[str, torch.Tensor]], tuple[torch.Tensor, dict[str, float]]],
    device: torch.device,
) -> dict[str, float]:
    """Token-weighted loss, accuracy and perplexity (exp of the loss) over fixed held-out batches
    of either objective (`causal_lm_loss` or `span_corruption_loss`, whose span_acc comes too:
    its targets have a fixed length, so the label count weighs it right), in eval mode."""
    was_training = model.training
    model.eval()
    total, sums = 0, collections.Counter()
    for batch in batches:
        batch = {k: v.to(device) for k, v in batch.items()}
        _, metrics = loss_fn(model, batch)
        count = int((batch["labels"] != -100).sum())
        total += count
        sums.update({name: float(value) * count for name, value in metrics.items()})
    model.train(was_training)
    means = {f"val_{name}": value / max(total, 1) for name, value in sums.items()}
    return {**means, "val_ppl": math.exp(means["val_lm_loss"])}
