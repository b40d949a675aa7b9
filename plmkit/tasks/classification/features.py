"""Sentence and sentence-pair classification (and regression): labelled rows → tensors → scores.

Where it sits: `stages/finetune.py` and `stages/evaluate.py` read a TSV/CSV/JSONL file with
`read_table`, fix the label ids with `LabelSet`, tokenize once with `encode_examples`, then hand
tasks/sampling.py `SampledBatches` over `collate_examples`, and `classification_loss`, to the
one trainer; `predict_logits` and `evaluate_logits` score a model on a dev or test file. Models
never appear here by class: a classifier is any `nn.Module` called as
`model(input_ids, attention_mask, token_type_ids)` that returns logits (B, num_labels), with
num_labels == 1 meaning regression.

Key choices and their cost (reading and validating rows lives in tasks/tables.py):
- Examples are tokenized once, unpadded, and padded per batch to the longest row; with short
  sentences most batches are far shorter than max_length (shuffling and resume: sampling.py).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch import nn

from plmkit.runtime.errors import UserError
from plmkit.tasks.classification.schema import LabelSet, tokenize
from plmkit.tasks.metrics import classification_metrics, regression_metrics
from plmkit.tasks.sampling import pad_inputs, predict_batches
from plmkit.tasks.tables import Example, check_task

# ----------------------------------------------------------------------------- tokenizing


@dataclass
class EncodedSet:
    """Tokenized examples, unpadded: one int array per row, plus labels (or None)."""

    input_ids: list[np.ndarray]
    token_type_ids: list[np.ndarray]
    labels: torch.Tensor | None  # (N,) long for classification, float for regression
    task: str = "classification"
    pad_id: int = 0

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def lengths(self) -> np.ndarray:
        """Tokens per row, specials included."""
        return np.fromiter((len(ids) for ids in self.input_ids), dtype=np.int64, count=len(self))


def encode_examples(
    tokenizer: Tokenizer,
    examples: Sequence[Example],
    max_length: int,
    labels: LabelSet | None,
    task: str = "classification",
) -> EncodedSet:
    """Tokenize (schema.tokenize) and attach the label ids or regression targets."""
    check_task(task)
    input_ids, type_ids, pad_id = tokenize(tokenizer, examples, max_length)
    return EncodedSet(input_ids, type_ids, _label_tensor(examples, labels, task), task, pad_id)


def _label_tensor(
    examples: Sequence[Example], labels: LabelSet | None, task: str
) -> torch.Tensor | None:
    missing = [ex for ex in examples if ex.label is None]
    if len(missing) == len(examples) or (task == "classification" and labels is None):
        return None
    if missing:
        ex = missing[0]
        raise UserError(f"{ex.source}:{ex.line}: no label, while other rows have one")
    if task == "regression":
        return torch.tensor([float(ex.label) for ex in examples], dtype=torch.float32)
    ids = [labels.index(ex.label, f"{ex.source}:{ex.line}") for ex in examples]
    return torch.tensor(ids, dtype=torch.long)


def collate_examples(
    encoded: EncodedSet, indices: Sequence[int], with_labels: bool = True
) -> dict[str, torch.Tensor]:
    """Pad rows `indices` to the longest of them; pad id in input_ids, 0 in the mask."""
    batch = pad_inputs([encoded.input_ids[i] for i in indices], encoded.pad_id,
                       [encoded.token_type_ids[i] for i in indices])
    if with_labels and encoded.labels is not None:
        batch["labels"] = encoded.labels[torch.as_tensor(np.asarray(indices, dtype=np.int64))]
    return batch


# ----------------------------------------------------------------------------- training


def classification_loss(
    model: nn.Module, batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy (with accuracy) for integer labels; mean squared error for float labels."""
    logits = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])  # (B, C)
    labels = batch["labels"]
    if labels.is_floating_point():
        if logits.shape[-1] != 1:
            raise ValueError(f"regression needs 1 output, the model gives {logits.shape[-1]}")
        return F.mse_loss(logits.squeeze(-1).float(), labels.float()), {}
    loss = F.cross_entropy(logits.float(), labels)
    acc = (logits.argmax(dim=-1) == labels).float().mean().item()
    return loss, {"acc": acc}


# ----------------------------------------------------------------------------- predicting


def predict_logits(
    model: nn.Module, encoded: EncodedSet, batch_size: int = 64, device: str | torch.device = "cpu"
) -> np.ndarray:
    """Logits (N, num_labels) in input order; batches of similar length, eval mode, no grad."""
    logits = np.zeros((0, 0), dtype=np.float32)
    collate = functools.partial(collate_examples, encoded, with_labels=False)
    for rows, out in predict_batches(model, encoded.lengths, batch_size, collate, device):
        if not logits.size:
            logits = np.empty((len(encoded.lengths), out.shape[-1]), dtype=np.float32)
        logits[rows] = out.float().cpu().numpy()  # (B, C)
    return logits


def evaluate_logits(
    logits: np.ndarray,
    gold: EncodedSet | torch.Tensor | np.ndarray,
    task: str = "classification",
    label_set: LabelSet | None = None,
) -> dict[str, float]:
    """Accuracy/F1/MCC (classification) or Pearson/Spearman/MSE (regression) of logits vs gold."""
    check_task(task)
    labels = gold.labels if isinstance(gold, EncodedSet) else gold
    if labels is None:
        raise UserError("the evaluation file has no labels to score against")
    gold_np = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    logits = np.asarray(logits).reshape(len(gold_np), -1)  # (N, C)
    if task == "regression":
        return regression_metrics(logits[:, 0], gold_np)
    num_labels = len(label_set) if label_set is not None else logits.shape[1]
    return classification_metrics(logits.argmax(axis=1), gold_np, num_labels)
