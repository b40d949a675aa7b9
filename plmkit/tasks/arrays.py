"""Encoder inputs as NumPy arrays: padding and length-sorted batch order, without torch.

The PyTorch predictors (tasks/sampling.py) and the ONNX ones (serve/onnx_predictor.py) batch the
same rows the same way from here, so an ONNX deployment, which installs no torch, pads exactly
as training and evaluation did.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

INPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids")  # encoder inputs, model order


def pad_rows(rows: Sequence[Sequence[int]], pad_id: int,
             type_rows: Sequence[Sequence[int]] | None = None) -> dict[str, np.ndarray]:
    """input_ids (pad_id at the padding), attention_mask (1 = token) and token_type_ids (from
    `type_rows`, else 0), int64 (B, T), right-padded to the longest row."""
    longest = max(len(r) for r in rows)
    input_ids = np.full((len(rows), longest), pad_id, dtype=np.int64)  # (B, T)
    type_ids = np.zeros((len(rows), longest), dtype=np.int64)
    mask = np.zeros((len(rows), longest), dtype=np.int64)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
        if type_rows is not None:
            type_ids[i, : len(row)] = type_rows[i]
    return {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": type_ids}


def longest_first(lengths: Sequence[int] | np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Row indices per prediction batch, longest rows first, so a batch pads little."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]
