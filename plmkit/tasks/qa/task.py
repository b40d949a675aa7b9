"""Extractive question answering, as a task contract.

A fine-tuned model is a Hugging Face `BertForQuestionAnswering` directory whose config.json
records the QA settings it answered its dev set with (windows, n-best, whether "no answer" is
allowed, the metric); a foreign directory gets QAConfig's defaults with windows scaled to its
length, and no "no answer". A prediction is the answer text with its character offsets in the
context (start = end = -1 for "no answer", whose score is then the no-answer score).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from plmkit.config import FinetuneConfig, ModelConfig, PredictConfig, QAConfig, from_dict, to_dict
from plmkit.models.heads import SpanExtractor
from plmkit.runtime.errors import UserError
from plmkit.tasks.contract import Prediction, TaskFamily, TaskModel
from plmkit.tasks.qa.answers import answer_questions, choose_metric, read_questions
from plmkit.tasks.qa.data import QAExample, read_qa_inputs
from plmkit.tasks.qa.features import QAPrediction, collate_qa, encode_qa, span_loss
from plmkit.tasks.qa.scores import qa_metrics
from plmkit.text.tokenizer import special_ids

NO_ANSWER = -1  # start and end of the empty answer
DEFAULT_MAX_LENGTH = 384


@dataclasses.dataclass(frozen=True)
class ReaderSettings:
    max_length: int
    qa: QAConfig  # metric and version_2 are fixed once the training rows are seen

    @property
    def allow_null(self) -> bool:
        return bool(self.qa.version_2)


def configure(cfg: FinetuneConfig, tokenizer: Tokenizer) -> ReaderSettings:
    choose_metric(cfg.qa, [])  # an unknown metric fails before any file is read
    return ReaderSettings(cfg.max_length, cfg.qa)


def read(path: str | Path, settings: ReaderSettings, limit: int = 0) -> list[QAExample]:
    return read_questions(str(path), limit=limit)


def settle(settings: ReaderSettings, train: list[QAExample]) -> ReaderSettings:
    """The metric (SQuAD or CMRC rules) and whether "no answer" is allowed, from the training file."""
    qa = settings.qa
    version_2 = qa.version_2 if qa.version_2 is not None else any(ex.impossible for ex in train)
    qa = dataclasses.replace(qa, metric=choose_metric(qa, train), version_2=version_2)
    return dataclasses.replace(settings, qa=qa)


def encode(tokenizer: Tokenizer, rows: list[QAExample], settings: ReaderSettings):
    return encode_qa(tokenizer, rows, max_length=settings.max_length, stride=settings.qa.stride,
                     max_question_length=settings.qa.max_question_length, training=True)


def build(cfg: ModelConfig, settings: ReaderSettings) -> SpanExtractor:
    return SpanExtractor(cfg)


def settings_to_config(settings: ReaderSettings) -> dict[str, Any]:
    return {"plmkit_task": {"task": "qa", "max_length": settings.max_length,
                            "qa": to_dict(settings.qa)}}


def settings_from_config(hf: dict, cfg: ModelConfig, model_dir: Path) -> ReaderSettings:
    info = hf.get("plmkit_task") or {}
    qa = from_dict(QAConfig, info.get("qa"), "plmkit_task.qa")
    max_length = min(info.get("max_length", DEFAULT_MAX_LENGTH), cfg.max_position)
    if not info:  # a Transformers directory: no "no answer", the usual windows scaled to it
        qa = dataclasses.replace(qa, version_2=False)
        if max_length < DEFAULT_MAX_LENGTH:
            qa = dataclasses.replace(qa, stride=max_length // 3, max_question_length=max_length // 6)
    return ReaderSettings(max_length, qa)


def answers(tm: TaskModel, rows: list[QAExample], batch_size: int) -> list[QAPrediction]:
    """The decoded answer of every row, in order (row ids may repeat: they are not keys here)."""
    keyed = [dataclasses.replace(ex, qid=str(i)) for i, ex in enumerate(rows)]
    found = answer_questions(tm.model, tm.tokenizer, keyed, tm.settings.qa,
                             max_length=tm.settings.max_length, allow_null=tm.settings.allow_null,
                             device=tm.device, batch_size=batch_size)
    return [found[ex.qid] for ex in keyed]


def _prediction(p: QAPrediction) -> Prediction:
    if p.start is None or p.end is None:
        return {"answer": "", "start": NO_ANSWER, "end": NO_ANSWER, "score": p.null_score}
    return {"answer": p.text, "start": p.start, "end": p.end, "score": p.score}


def score(tm: TaskModel, rows: list[QAExample], batch_size: int) -> tuple[dict, list[Prediction]]:
    """EM / F1 under the model's metric (chosen from `rows` for a foreign model)."""
    predictions = [_prediction(p) for p in answers(tm, rows, batch_size)]
    metric = choose_metric(tm.settings.qa, rows)
    golds = {ex.qid: [a.text for a in ex.answers] for ex in rows}
    texts = {ex.qid: p["answer"] for ex, p in zip(rows, predictions, strict=True)}
    return qa_metrics(texts, golds, metric), predictions


def predict(tm: TaskModel, rows: list[QAExample], batch_size: int) -> list[Prediction]:
    return [_prediction(p) for p in answers(tm, rows, batch_size)]


def parse(value: Any, index: int) -> QAExample:
    """A (question, context) pair, or a QAExample (its gold answers unused)."""
    if isinstance(value, QAExample):
        return value
    if isinstance(value, str) or len(value) != 2:
        raise UserError(f"predict: input {index + 1}: a QA model takes (question, context) pairs")
    question, context = value
    if not question.strip():
        raise UserError(f"predict: question {index + 1} is empty")
    if not context.strip():
        raise UserError(f"predict: context {index + 1} is empty")
    return QAExample(str(index), question, context, ())


def inputs(cfg: PredictConfig, settings: ReaderSettings) -> list[tuple[dict, QAExample]]:
    """question=/context= pairs, or a file; a SQuAD/CMRC file's rows are shown by id."""
    if cfg.text:
        raise UserError("predict: a QA model takes question=... context=... (or file=...), not text=")
    if cfg.file and (cfg.question or cfg.context):
        raise UserError("predict: give question=... context=... or file=..., not both")
    if cfg.file:
        examples, from_squad = read_qa_inputs(cfg.file)
        if from_squad:
            return [({"id": ex.qid, "question": ex.question}, ex) for ex in examples]
        return [({"question": ex.question, "context": ex.context}, ex) for ex in examples]
    if not cfg.question and not cfg.context:
        raise UserError("predict: nothing to predict (give question=... context=..., or file=...)")
    if len(cfg.question) != len(cfg.context):
        raise UserError(f"predict: {len(cfg.question)} question(s) but {len(cfg.context)} "
                        "context(s); give one context per question, in the same order")
    rows = [parse(pair, i) for i, pair in enumerate(zip(cfg.question, cfg.context, strict=True))]
    return [({"question": ex.question, "context": ex.context}, ex) for ex in rows]


def dump(rows: list[QAExample], predictions: list[Prediction]) -> tuple[str, str]:
    """dev-predictions.json: {question id: answer text}, the file SQuAD's scripts read."""
    texts = {ex.qid: p["answer"] for ex, p in zip(rows, predictions, strict=True)}
    return "dev-predictions.json", json.dumps(texts, ensure_ascii=False, indent=1)


QA = TaskFamily(
    name="qa",
    tasks=("qa",),
    architectures=("BertForQuestionAnswering",),
    model_family="bert",
    description="an extractive QA model",
    build=build,
    settings_from_config=settings_from_config,
    configure=configure,
    read=read,
    settle=settle,
    encode=encode,
    collate=collate_qa,
    loss=lambda settings: span_loss,
    settings_to_config=settings_to_config,
    random_init=lambda tokenizer: {"pad_token_id": special_ids(tokenizer).pad},
    shown=("em", "f1"),
    summary=lambda settings, train_set: {"metric": settings.qa.metric},
    score=score,
    predict=predict,
    parse=parse,
    inputs=inputs,
    dump=dump,
)
