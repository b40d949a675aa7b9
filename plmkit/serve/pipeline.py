"""Prediction API: a fine-tuned classifier directory → labels and probabilities for raw text.

`Classifier.load` accepts a plmkit fine-tuning run or any Hugging Face
`BertForSequenceClassification` directory; what plmkit wrote into config.json (columns,
max length, pooling) is used when present, Transformers' defaults otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from plmkit.checkpoint import load_into, read_checkpoint, resolve_model_dir
from plmkit.config import TableConfig, from_dict
from plmkit.models.heads import SequenceClassifier
from plmkit.runtime.devices import pick_device
from plmkit.runtime.errors import UserError
from plmkit.tasks.classification.features import LabelSet, encode_examples, predict_logits
from plmkit.tasks.tables import Example
from plmkit.text.tokenizer import load_tokenizer


@dataclass(frozen=True)
class Prediction:
    """One input's result: the label (or score, for regression) and class probabilities."""

    label: str | float
    probabilities: dict[str, float]


class Classifier:
    """A loaded classifier with its tokenizer and input settings."""

    def __init__(self, model: SequenceClassifier, tokenizer: Any, labels: LabelSet | None,
                 task: str, max_length: int, table: TableConfig, device: torch.device) -> None:
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.labels = labels
        self.task = task
        self.max_length = max_length
        self.table = table
        self.device = device

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> Classifier:
        """Load a fine-tuned model directory (or a run directory holding final/)."""
        model_dir = resolve_model_dir(path)
        checkpoint = read_checkpoint(model_dir)
        hf = checkpoint.hf_config
        info = hf.get("plmkit_task") or {}
        task = info.get("task") or ("regression" if hf.get("problem_type") == "regression"
                                    else "classification")
        labels = LabelSet.from_config(hf) if task == "classification" else None
        if task == "classification" and labels is None:
            raise UserError(f"{model_dir}/config.json: no id2label: not a fine-tuned classifier")
        num_labels = 1 if labels is None else len(labels.names)
        model = SequenceClassifier(checkpoint.cfg, num_labels,
                                   pooling=hf.get("plmkit_pooling", "cls"))
        load_into(model, checkpoint, require_heads=True)
        table = from_dict(TableConfig, info.get("table"), "plmkit_task.table")
        return cls(model, load_tokenizer(model_dir), labels, task, info.get("max_length", 128),
                   table, pick_device(device))

    def logits(self, examples: list[Example], batch_size: int = 64) -> np.ndarray:
        """Raw model outputs for examples (B, num_labels)."""
        encoded = encode_examples(self.tokenizer, examples, self.max_length, None, self.task)
        return predict_logits(self.model, encoded, batch_size, self.device)

    def predict(self, texts: list[str], pairs: list[str] | None = None) -> list[Prediction]:
        """Predict raw texts (and second sentences for pair tasks)."""
        if pairs is not None and len(pairs) != len(texts):
            raise UserError(f"predict: {len(texts)} texts but {len(pairs)} pair texts")
        examples = [Example(t, pairs[i] if pairs else None, None, i + 1) for i, t in enumerate(texts)]
        logits = self.logits(examples)
        if self.labels is None:
            return [Prediction(float(row[0]), {}) for row in logits]
        probs = torch.softmax(torch.from_numpy(logits).float(), dim=-1).numpy()
        names = self.labels.names
        return [Prediction(names[int(p.argmax())], {n: float(v) for n, v in zip(names, p)})
                for p in probs]
