"""The sentence (and sentence-pair) classification and regression family, as a task contract.

A fine-tuned model is a Hugging Face `BertForSequenceClassification` directory whose config.json
also records how inputs are read (columns, max length, pooling) and the label set; a foreign
directory gets Transformers' defaults (first column, 128 tokens, cls pooling, its id2label).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from plmkit.config import (
    FinetuneConfig,
    ModelConfig,
    to_dict,
)
from plmkit.models.heads import SequenceClassifier
from plmkit.tasks.classification.features import (
    classification_loss,
    collate_examples,
    encode_examples,
    evaluate_logits,
    predict_logits,
)
from plmkit.tasks.classification.schema import (
    ClassifierSettings,
    LabelSet,
    inputs,
    parse,
    predictions,
    settings_from_config,
    shown,
)
from plmkit.tasks.contract import Prediction, TaskFamily, TaskModel, jsonl_dump
from plmkit.tasks.tables import Example, read_table
from plmkit.text.tokenizer import special_ids


def configure(cfg: FinetuneConfig, tokenizer: Tokenizer) -> ClassifierSettings:
    labels = LabelSet(cfg.labels) if cfg.labels and cfg.task == "classification" else None
    return ClassifierSettings(cfg.task, cfg.max_length, cfg.table, cfg.pooling, labels)


def read(path: str | Path, settings: ClassifierSettings, limit: int = 0) -> list[Example]:
    return read_table(path, settings.table, task=settings.task, limit=limit)


def settle(settings: ClassifierSettings, train: list[Example]) -> ClassifierSettings:
    """The label set: the configured one, else the sorted labels of the training file."""
    if settings.task == "regression" or settings.labels is not None:
        return settings
    return dataclasses.replace(settings, labels=LabelSet.from_examples(train))


def check(settings: ClassifierSettings, rows: list[Example]) -> None:
    """A label outside the label set fails here, naming its line, not after training."""
    if settings.labels is not None:
        for ex in rows:
            if ex.label is not None:
                settings.labels.index(ex.label, f"{ex.source}:{ex.line}")


def encode(tokenizer: Tokenizer, rows: list[Example], settings: ClassifierSettings):
    return encode_examples(tokenizer, rows, settings.max_length, settings.labels, settings.task)


def build(cfg: ModelConfig, settings: ClassifierSettings) -> SequenceClassifier:
    num_labels = 1 if settings.labels is None else len(settings.labels)
    return SequenceClassifier(cfg, num_labels, pooling=settings.pooling)


def settings_to_config(settings: ClassifierSettings) -> dict[str, Any]:
    """config.json fields for Transformers (labels, problem type) and for plmkit's readers."""
    regression = settings.task == "regression"
    extra: dict[str, Any] = {
        "problem_type": "regression" if regression else "single_label_classification",
        "plmkit_pooling": settings.pooling,
        "plmkit_task": {"task": settings.task, "max_length": settings.max_length,
                        "table": to_dict(settings.table)},
    }
    if settings.labels is not None:
        extra.update(settings.labels.to_config())
    return extra


def score(tm: TaskModel, rows: list[Example], batch_size: int) -> tuple[dict, list[Prediction]]:
    s = tm.settings
    encoded = encode_examples(tm.tokenizer, rows, s.max_length, s.labels, s.task)
    logits = predict_logits(tm.model, encoded, batch_size, tm.device)
    return evaluate_logits(logits, encoded, s.task, s.labels), predictions(logits, s)


def predict(tm: TaskModel, rows: list[Example], batch_size: int) -> list[Prediction]:
    s = tm.settings
    encoded = encode_examples(tm.tokenizer, rows, s.max_length, None, s.task)
    return predictions(predict_logits(tm.model, encoded, batch_size, tm.device), s)


CLASSIFICATION = TaskFamily(
    name="classification",
    tasks=("classification", "regression"),
    architectures=("BertForSequenceClassification",),
    model_family="bert",
    description="a sentence classifier",
    build=build,
    settings_from_config=lambda hf, cfg, model_dir: settings_from_config(hf, model_dir),
    configure=configure,
    read=read,
    settle=settle,
    check=check,
    encode=encode,
    collate=collate_examples,
    loss=lambda settings: classification_loss,
    settings_to_config=settings_to_config,
    random_init=lambda tokenizer: {"pad_token_id": special_ids(tokenizer).pad},
    score=score,
    predict=predict,
    parse=parse,
    inputs=inputs,
    dump=jsonl_dump(shown),
)
