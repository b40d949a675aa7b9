"""The token-tagging family (NER, POS, ...), as a task contract.

A fine-tuned model is a Hugging Face `BertForTokenClassification` directory (id2label = the
tags) that also records how its files are read and the tag scheme; a foreign directory gets
its id2label, BIO and 128 tokens. A prediction is the entities of a sentence with character
offsets into its text (a raw text as given, or a file's words joined by their separator).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from plmkit.config import FinetuneConfig, ModelConfig, PredictConfig, TagConfig, from_dict, to_dict
from plmkit.models.heads import TokenClassifier
from plmkit.tasks.classification.schema import LabelSet
from plmkit.tasks.contract import Prediction, TaskFamily, TaskModel, jsonl_dump
from plmkit.tasks.inputs import prediction_texts
from plmkit.tasks.ner.data import TaggedSentence, read_tagged_file
from plmkit.tasks.ner.features import (
    check_tags,
    collate_tagged,
    encode_tagged,
    ner_metrics,
    predict_tags,
    sentence_entities,
    tag_label_set,
    token_classification_loss,
)
from plmkit.text.tokenizer import special_ids


@dataclasses.dataclass(frozen=True)
class TaggerSettings:
    max_length: int
    tags: TagConfig  # how tagged files are read
    scheme: str  # the scheme the model's tags are in
    labels: LabelSet | None = None  # the tag set (None until the training rows fix it)


def configure(cfg: FinetuneConfig, tokenizer: Tokenizer) -> TaggerSettings:
    labels = LabelSet(cfg.labels) if cfg.labels else None
    return TaggerSettings(cfg.max_length, cfg.tags, cfg.tags.model_scheme or cfg.tags.scheme, labels)


def read(path: str | Path, settings: TaggerSettings, limit: int = 0) -> list[TaggedSentence]:
    return read_tagged_file(path, settings.tags, limit=limit)


def settle(settings: TaggerSettings, train: list[TaggedSentence]) -> TaggerSettings:
    if settings.labels is not None:
        return settings
    return dataclasses.replace(settings, labels=tag_label_set(train, settings.scheme))


def encode(tokenizer: Tokenizer, rows: list[TaggedSentence], settings: TaggerSettings):
    return encode_tagged(tokenizer, rows, settings.max_length, settings.labels)


def build(cfg: ModelConfig, settings: TaggerSettings) -> TokenClassifier:
    return TokenClassifier(cfg, len(settings.labels))


def settings_to_config(settings: TaggerSettings) -> dict[str, Any]:
    return {**settings.labels.to_config(), "plmkit_task": {
        "task": "ner", "max_length": settings.max_length, "scheme": settings.scheme,
        "tags": to_dict(settings.tags)}}


def settings_from_config(hf: dict, cfg: ModelConfig, model_dir: Path) -> TaggerSettings:
    labels = LabelSet.from_config(hf, f"{model_dir}/config.json")
    info = hf.get("plmkit_task") or {}
    tags = from_dict(TagConfig, info.get("tags"), "plmkit_task.tags")
    return TaggerSettings(info.get("max_length", 128), tags,
                          info.get("scheme") or tags.model_scheme or tags.scheme, labels)


def _tags(tm: TaskModel, rows: list[TaggedSentence], batch_size: int) -> list[list[str]]:
    features = encode_tagged(tm.tokenizer, rows, tm.settings.max_length, None)
    return predict_tags(tm.model, features, tm.settings.labels, batch_size, tm.device)


def _entities(rows: list[TaggedSentence], tags: list[list[str]]) -> list[Prediction]:
    return [{"entities": [e._asdict() for e in sentence_entities(s, t)]}
            for s, t in zip(rows, tags, strict=True)]


def score(tm: TaskModel, rows: list[TaggedSentence], batch_size: int) -> tuple[dict, list[Prediction]]:
    tags = _tags(tm, rows, batch_size)
    return ner_metrics([list(s.tags) for s in rows], tags), _entities(rows, tags)


def predict(tm: TaskModel, rows: list[TaggedSentence], batch_size: int) -> list[Prediction]:
    return _entities(rows, _tags(tm, rows, batch_size))


def parse(value: Any, index: int) -> TaggedSentence:
    """A raw text (cut into words by TaggedSentence.from_text), or a sentence already in words."""
    if isinstance(value, TaggedSentence):
        return value
    return TaggedSentence.from_text(value, index + 1)


def inputs(cfg: PredictConfig, settings: TaggerSettings) -> list[tuple[dict, TaggedSentence]]:
    return [({"text": text}, parse(text, i))
            for i, (text, _) in enumerate(prediction_texts(cfg, paired=False))]


NER = TaskFamily(
    name="ner",
    tasks=("ner",),
    architectures=("BertForTokenClassification",),
    model_family="bert",
    description="a token classifier (NER)",
    build=build,
    settings_from_config=settings_from_config,
    configure=configure,
    read=read,
    settle=settle,
    check=lambda settings, rows: check_tags(rows, settings.labels),
    encode=encode,
    collate=collate_tagged,
    loss=lambda settings: token_classification_loss,
    settings_to_config=settings_to_config,
    random_init=lambda tokenizer: {"pad_token_id": special_ids(tokenizer).pad},
    shown=("precision", "recall", "f1"),
    score=score,
    predict=predict,
    parse=parse,
    inputs=inputs,
    dump=jsonl_dump(lambda sentence: {"text": sentence.text}),
)
