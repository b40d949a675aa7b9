"""Batches for every labelled-data task: shuffled epochs for the trainer, whose cursor is two
integers, and length-sorted ones for prediction (`predict_batches`).

Every fine-tuning task (classification, seq2seq, tagging, QA, matching) trains on a fixed set of
encoded rows; `SampledBatches` is the one place that orders them and the one BatchSource they
hand to the trainer. A task contributes only its collate function, `collate(rows, indices)` →
padded tensors (built on `pad_inputs`), while ordering and resume live here. Each epoch
is a permutation seeded by (seed, epoch), so the resume cursor is (epoch, position) and a resumed
run sees exactly the batches an uninterrupted one would. Under torchrun every rank walks the same
permutation in global batches of batch_size × world rows and keeps every world-th row from its
rank on, so the cursor is the same on all ranks. The cost: no length bucketing, so a batch pads
to its longest row.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence, Sized
from typing import Any, Generic, TypeVar

import numpy as np
import torch
from torch import nn

from plmkit.runtime.errors import UserError
from plmkit.tasks.arrays import INPUT_KEYS, longest_first, pad_rows

Rows = TypeVar("Rows", bound=Sized)


class SampledBatches(Generic[Rows]):
    """Batches `collate(rows, indices)` over shuffled epochs of `rows`; resumable (`state_dict`)."""

    def __init__(
        self,
        rows: Rows,
        batch_size: int,
        collate: Callable[[Rows, np.ndarray], dict[str, torch.Tensor]],
        seed: int,
        shuffle: bool = True,
        drop_last: bool = False,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        if len(rows) < 1:
            raise UserError("no labelled examples to train on")
        if batch_size < 1:
            raise UserError(f"batch_size={batch_size}: must be at least 1")
        if len(rows) < batch_size * world and world > 1:
            raise UserError(f"{len(rows)} examples cannot fill one batch of {batch_size} for "
                            f"each of {world} processes")
        self.rows, self.collate, self.num_rows = rows, collate, len(rows)
        self.seed, self.shuffle, self.rank, self.world = seed, shuffle, rank, world
        self.batch_size = batch_size * world  # the global batch; this rank keeps its share
        # Full batches only (when the data holds one): in-batch negatives need company, and a
        # pair alone gives a zero loss; several processes need a share each. Each epoch's
        # permutation differs, so no row is left out for good.
        self.drop_last = (drop_last or world > 1) and self.num_rows >= self.batch_size
        self.epoch, self.position = 0, 0
        self._order: tuple[int, np.ndarray] | None = None  # (epoch, permutation) cache

    @property
    def steps_per_epoch(self) -> int:
        """Batches per pass over the data (the last one may be smaller, unless drop_last)."""
        if self.drop_last:
            return self.num_rows // self.batch_size
        return -(-self.num_rows // self.batch_size)

    def _permutation(self) -> np.ndarray:
        if self._order is None or self._order[0] != self.epoch:
            rng = np.random.default_rng([self.seed % 2**32, self.epoch])
            order = rng.permutation(self.num_rows) if self.shuffle else np.arange(self.num_rows)
            self._order = (self.epoch, order)
        return self._order[1]

    def next_batch(self, progress: float) -> dict[str, torch.Tensor]:
        """The next batch (a new epoch starts when one ends); `progress` is ignored."""
        end = self.num_rows - (self.batch_size - 1 if self.drop_last else 0)
        if self.position >= end:
            self.epoch, self.position = self.epoch + 1, 0
        indices = self._permutation()[self.position : self.position + self.batch_size]
        self.position += len(indices)
        return self.collate(self.rows, indices[self.rank :: self.world])

    def state_dict(self) -> dict:
        """JSON-serialisable cursor: the next batch after a reload is the one that would have come."""
        return {"epoch": self.epoch, "position": self.position, "num_examples": self.num_rows}

    def load_state_dict(self, state: dict) -> None:
        """Resume from `state_dict()`; a different number of rows is a UserError."""
        if state.get("num_examples", self.num_rows) != self.num_rows:
            raise UserError(
                f"cannot resume: the checkpoint was trained on {state['num_examples']} examples, "
                f"this training file has {self.num_rows}"
            )
        self.epoch, self.position = int(state["epoch"]), int(state["position"])


def steps_for_epochs(epochs: float, num_rows: int, batch_size: int, grad_accum: int = 1) -> int:
    """Optimizer steps for `epochs` passes over `num_rows` rows."""
    if batch_size < 1 or grad_accum < 1:
        raise UserError("finetune: train.batch_size and train.grad_accum must be at least 1")
    return max(1, math.ceil(epochs * num_rows / (batch_size * grad_accum)))


def pad_inputs(
    rows: Sequence[Sequence[int]], pad_id: int, type_rows: Sequence[Sequence[int]] | None = None
) -> dict[str, torch.Tensor]:
    """`arrays.pad_rows` as tensors: input_ids, attention_mask and token_type_ids (B, T)."""
    return {key: torch.from_numpy(value) for key, value in pad_rows(rows, pad_id, type_rows).items()}


def predict_batches(
    model: nn.Module,
    lengths: Sequence[int] | np.ndarray,
    batch_size: int,
    collate: Callable[[np.ndarray], dict[str, torch.Tensor]],
    device: str | torch.device = "cpu",
) -> Iterator[tuple[np.ndarray, Any]]:
    """(row indices, model output) per batch of `collate(indices)`, longest rows first (little
    padding); the model runs in eval mode under inference_mode, which also holds for the
    caller's code between batches, and gets its train/eval mode back at the end."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for rows in longest_first(lengths, batch_size):
                batch = collate(rows)
                yield rows, model(*(batch[key].to(device) for key in INPUT_KEYS))
    finally:
        model.train(was_training)
