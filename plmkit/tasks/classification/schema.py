"""What a classifier directory records and what its predictions look like, without torch.

The label set, the settings config.json keeps, how a text (or pair) becomes token ids, and how
logits become the prediction dicts `plmkit predict` prints. The PyTorch family (task.py,
features.py) and the ONNX forms (serve/onnx_predictor.py) both use these, so an exported model
reads its inputs and answers exactly as the fine-tuned one does, and an ONNX deployment needs
only `tokenizers` and `numpy`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from plmkit.config import PredictConfig, TableConfig, from_dict
from plmkit.runtime.errors import UserError
from plmkit.tasks.arrays import longest_first, pad_rows
from plmkit.tasks.inputs import prediction_texts
from plmkit.tasks.tables import Example
from plmkit.text.tokenizer import configured

MIN_MAX_LENGTH = 8  # [CLS] A [SEP] B [SEP] plus a few tokens of text
Run = Callable[[dict[str, np.ndarray]], list[np.ndarray]]  # encoder inputs → the network's outputs


class LabelSet:
    """The ordered label names of a classifier: name ⇄ id, saved as Hugging Face id2label."""

    def __init__(self, labels: Sequence[str], source: str = "the configured labels") -> None:
        self.names = [str(name).strip() for name in labels]
        self.source = source  # said in errors: "(from the training file train.tsv)"
        if not self.names:
            raise UserError(f"label set from {source} is empty")
        if len(set(self.names)) != len(self.names):
            dup = next(n for n in self.names if self.names.count(n) > 1)
            raise UserError(f"label set from {source} lists '{dup}' twice")
        self._ids = {name: i for i, name in enumerate(self.names)}

    @classmethod
    def from_examples(cls, examples: Sequence[Example]) -> LabelSet:
        """Sorted unique labels of labelled examples; numeric-looking labels sort as numbers."""
        names = {str(ex.label) for ex in examples if ex.label is not None}
        source = f"the training file {examples[0].source}" if examples else "the training file"
        if not names:
            raise UserError(f"no labels in {source}")
        return cls(sorted(names, key=_label_sort_key), source)

    def __len__(self) -> int:
        return len(self.names)

    def index(self, label: str | float, where: str) -> int:
        """The id of `label`; an unknown label is a UserError naming `where` (FILE:LINE)."""
        name = str(label).strip()
        if name not in self._ids:
            shown = ", ".join(self.names[:20]) + (", …" if len(self.names) > 20 else "")
            raise UserError(
                f"{where}: label '{name}' is not in the label set [{shown}] (from {self.source})"
            )
        return self._ids[name]

    def to_config(self) -> dict[str, dict]:
        """`id2label` (string keys, as Hugging Face writes them) and `label2id` for config.json."""
        return {
            "id2label": {str(i): name for i, name in enumerate(self.names)},
            "label2id": {name: i for i, name in enumerate(self.names)},
        }

    @classmethod
    def from_config(cls, config: dict, source: str = "the model's config") -> LabelSet:
        """The label set saved by `to_config` (or any Hugging Face config.json with id2label)."""
        id2label = config.get("id2label")
        if not isinstance(id2label, dict) or not id2label:
            raise UserError(f"{source}: no id2label mapping")
        try:
            ids = {int(key): str(name) for key, name in id2label.items()}
        except ValueError:
            raise UserError(f"{source}: id2label keys must be integers") from None
        if sorted(ids) != list(range(len(ids))):
            raise UserError(f"{source}: id2label ids must be 0..{len(ids) - 1}")
        return cls([ids[i] for i in range(len(ids))], source)


def _label_sort_key(name: str) -> tuple[int, float, str]:
    try:
        return (0, float(name), name)
    except ValueError:
        return (1, 0.0, name)


@dataclasses.dataclass(frozen=True)
class ClassifierSettings:
    task: str  # classification | regression
    max_length: int
    table: TableConfig
    pooling: str
    labels: LabelSet | None = None  # None for regression (and until the training rows fix it)


def settings_from_config(hf: dict, model_dir: Path) -> ClassifierSettings:
    """The settings config.json recorded (a foreign directory: Transformers' defaults)."""
    info = hf.get("plmkit_task") or {}
    task = info.get("task") or ("regression" if hf.get("problem_type") == "regression"
                                else "classification")
    labels = LabelSet.from_config(hf) if task == "classification" else None
    if task == "classification" and labels is None:
        raise UserError(f"{model_dir}/config.json: no id2label: not a fine-tuned classifier")
    table = from_dict(TableConfig, info.get("table"), "plmkit_task.table")
    return ClassifierSettings(task, info.get("max_length", 128), table,
                              hf.get("plmkit_pooling", "cls"), labels)


def tokenize(tokenizer: Tokenizer, examples: Sequence[Example], max_length: int
             ) -> tuple[list[np.ndarray], list[np.ndarray], int]:
    """(input_ids, token_type_ids, pad id): [CLS]/[SEP] and pair type ids added, each row cut
    longest-first to max_length, unpadded."""
    if max_length < MIN_MAX_LENGTH:
        raise UserError(
            f"max_length={max_length} cannot hold [CLS]/[SEP] and text; use at least {MIN_MAX_LENGTH}"
        )
    if tokenizer.post_processor is None:
        raise UserError("the tokenizer has no post-processor to add [CLS] and [SEP]")
    work = configured(tokenizer, max_length, "longest_first")
    inputs = [ex.text if ex.text_pair is None else (ex.text, ex.text_pair) for ex in examples]
    encodings = work.encode_batch(inputs)
    pad_id = tokenizer.token_to_id("[PAD]")
    return ([np.asarray(enc.ids, dtype=np.int32) for enc in encodings],
            [np.asarray(enc.type_ids, dtype=np.int8) for enc in encodings],
            0 if pad_id is None else pad_id)


def predictions(logits: np.ndarray, settings: ClassifierSettings) -> list[dict[str, Any]]:
    """The label (or score, for regression) and class probabilities of every row."""
    logits = np.asarray(logits, dtype=np.float32)  # (N, C)
    if settings.labels is None:
        return [{"label": float(row[0]), "probabilities": {}} for row in logits]
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probs = shifted / shifted.sum(axis=-1, keepdims=True)
    names = settings.labels.names
    return [{"label": names[int(p.argmax())],
             "probabilities": {n: float(v) for n, v in zip(names, p, strict=True)}} for p in probs]


def parse(value: Any, index: int) -> Example:
    """A text, or a (text, second sentence) pair."""
    text, pair = (value, None) if isinstance(value, str) else tuple(value)
    return Example(text, pair, None, index + 1)


def inputs(cfg: PredictConfig, settings: ClassifierSettings) -> list[tuple[dict, Example]]:
    """`plmkit predict`'s inputs: (what is shown, the row) per text or TAB-separated pair."""
    paired = settings.table.text_pair_column is not None
    return [(shown(parse(value, i)), parse(value, i))
            for i, value in enumerate(prediction_texts(cfg, paired))]


def shown(example: Example) -> dict[str, Any]:
    return {"text": example.text,
            **({"text_pair": example.text_pair} if example.text_pair is not None else {})}


def predict_with(run: Run, tokenizer: Tokenizer, rows: Sequence[Example],
                 settings: ClassifierSettings, batch_size: int) -> list[dict[str, Any]]:
    """Predictions from any network call `run(inputs) → [logits (B, C)]` on NumPy arrays: what
    the ONNX forms use, batched and padded as evaluation does."""
    input_ids, type_ids, pad_id = tokenize(tokenizer, rows, settings.max_length)
    logits: np.ndarray | None = None
    for indices in longest_first([len(r) for r in input_ids], batch_size):
        feeds = pad_rows([input_ids[i] for i in indices], pad_id, [type_ids[i] for i in indices])
        out = run(feeds)[0]  # (B, C)
        if logits is None:
            logits = np.empty((len(input_ids), out.shape[-1]), dtype=np.float32)
        logits[indices] = out
    return predictions(logits, settings) if logits is not None else []
