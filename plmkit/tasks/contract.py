"""The task contract: what plmkit knows about one family of tasks, as a record of plain functions.

Every verb that needs per-task knowledge (finetune, evaluate, predict, and later the server,
export and distillation) is written once, over this record, instead of once per task. A family
fixes its *settings* (what a fine-tuned directory records in config.json under `plmkit_task`:
columns, label or tag set, max length, decoding options) at fine-tuning time and reads them
back when loaded; everything else takes those settings.

Predictions are JSON-ready dicts, one per input row, the same from `score` (what `evaluate`
and the dev set report) and from `predict` (what `plmkit predict` and `plmkit.load` return),
so a score is always the score of predictions a user can see.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer
from torch import nn

from plmkit.config import FinetuneConfig, ModelConfig, PredictConfig

Row = Any  # one input of the family: an Example, a TaggedSentence, a QAExample
Prediction = dict[str, Any]


@dataclass
class TaskModel:
    """A model ready to predict: its family, network and shape, tokenizer and recorded settings."""

    family: TaskFamily
    model: nn.Module
    config: ModelConfig
    tokenizer: Tokenizer
    settings: Any  # the family's own settings dataclass
    device: torch.device
    path: Path  # the directory it was read from (or the run being fine-tuned)


@dataclass(frozen=True)
class TaskFamily:
    """One task family. Fields left None mark a family that is loaded but not fine-tuned (a
    GPT-style language model: `generate` and perplexity use it)."""

    name: str
    tasks: tuple[str, ...]  # the `finetune task=` values it serves
    architectures: tuple[str, ...]  # Hugging Face classes it recognises; the first is written
    model_family: str  # bert | t5 | gpt
    description: str  # "a sentence classifier", for messages
    build: Callable[[ModelConfig, Any], nn.Module]
    settings_from_config: Callable[[dict, ModelConfig, Path], Any]  # config.json → settings
    # fine-tuning
    configure: Callable[[FinetuneConfig, Tokenizer], Any] | None = None  # checked settings
    read: Callable[[str | Path, Any, int], list[Row]] | None = None  # labelled file → rows
    settle: Callable[[Any, list[Row]], Any] | None = None  # what the training rows decide
    check: Callable[[Any, list[Row]], None] | None = None  # dev rows it could not score fail early
    encode: Callable[[Tokenizer, list[Row], Any], Sized] | None = None
    collate: Callable[[Any, Any], dict] | None = None
    loss: Callable[[Any], Callable] | None = None
    settings_to_config: Callable[[Any], dict] | None = None  # settings → config.json fields
    random_init: Callable[[Tokenizer], dict] | None = None  # ModelConfig fields from the tokenizer
    drop_last: bool = False  # train on full batches only (in-batch negatives)
    summary: Callable[[Any, Sized], dict] | None = None  # (settings, train set) → summary.json extras
    shown: tuple[str, ...] = ()  # the metrics results.md shows (default: all)
    # using a model
    score: Callable[[TaskModel, list[Row], int], tuple[dict[str, float], list[Prediction]]] | None = None
    predict: Callable[[TaskModel, list[Row], int], list[Prediction]] | None = None
    parse: Callable[[Any, int], Row] | None = None  # a Python input (text, pair, ...) → row
    inputs: Callable[[PredictConfig, Any], list[tuple[dict, Row]]] | None = None  # CLI → (shown, row)
    dump: Callable[[list[Row], list[Prediction]], tuple[str, str]] | None = None  # dev file
    accepts_any_encoder: bool = False  # loads any BERT-family directory (embeddings)

    @property
    def architecture(self) -> str:
        """The Hugging Face class a fine-tuned model of this family is written as."""
        return self.architectures[0]

    @property
    def finetunable(self) -> bool:
        return self.configure is not None


def jsonl_dump(inputs: Callable[[Row], dict]) -> Callable[[list[Row], list[Prediction]], tuple[str, str]]:
    """dev-predictions.jsonl: each row's `inputs(row)` fields and its prediction, a line each."""

    def dump(rows: list[Row], predictions: list[Prediction]) -> tuple[str, str]:
        lines = (json.dumps({**inputs(r), **p}, ensure_ascii=False) + "\n"
                 for r, p in zip(rows, predictions, strict=True))
        return "dev-predictions.jsonl", "".join(lines)

    return dump

