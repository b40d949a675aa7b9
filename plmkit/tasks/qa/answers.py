"""From a QA model and questions to answers and scores: the one path every QA caller takes.

Where it sits: `finetune task=qa` (dev scores), `evaluate` (a labelled file) and the serve/reader.py
`Reader` (raw questions) all answer through `answer_questions`, which strings together
tasks/qa/features.py's windows (`encode_qa`), model pass (`predict_spans`) and n-best decoding
(`decode_answers`) with the settings a model was fine-tuned with. So a long context is cut, and
an answer chosen, the same way whether it is scored or served. `read_questions` reads a
labelled file and prints what tasks/qa/data.py had to fix; `choose_metric` picks SQuAD's or
CMRC 2018's rules. The cost of the shared path: a caller that wants only the n-best lists
still runs the whole decoder (cheap next to the model pass).
"""

from __future__ import annotations

import unicodedata
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from tokenizers import Tokenizer
from torch import nn

from plmkit.config import QAConfig
from plmkit.runtime.console import print0
from plmkit.runtime.errors import UserError
from plmkit.tasks.qa.data import QAExample, read_qa
from plmkit.tasks.qa.features import QAPrediction, decode_answers, encode_qa, predict_spans
from plmkit.tasks.qa.scores import qa_metrics

METRICS = ("auto", "squad", "cmrc")


def read_questions(path: str, *, need_answers: bool = True, limit: int = 0) -> list[QAExample]:
    """Questions of a SQuAD/CMRC file; prints the report of answers it had to fix or skip."""
    with warnings.catch_warnings():  # said once, below, without a code location
        warnings.simplefilter("ignore", UserWarning)
        examples, report = read_qa(path, need_answers=need_answers, limit=limit)
    if report.has_issues:
        print0(report.summary())  # it names the file
    return examples


def choose_metric(qa: QAConfig, examples: Sequence[QAExample]) -> str:
    """cmrc for mostly-CJK contexts when qa.metric is auto, else what the config says."""
    if qa.metric not in METRICS:
        raise UserError(f"config qa.metric '{qa.metric}': use one of {', '.join(METRICS)}")
    if qa.metric != "auto":
        return qa.metric
    sample = "".join(ex.context[:200] for ex in examples[:200])
    cjk = sum(1 for ch in sample if "CJK" in unicodedata.name(ch, ""))
    return "cmrc" if cjk > len(sample) / 3 else "squad"


def answer_questions(
    model: nn.Module,
    tokenizer: Tokenizer,
    examples: Sequence[QAExample],
    qa: QAConfig,
    *,
    max_length: int,
    allow_null: bool,
    device: str | torch.device = "cpu",
    batch_size: int = 32,
) -> dict[str, QAPrediction]:
    """The predicted answer of every question, by question id: windows → logits → n-best."""
    features = encode_qa(tokenizer, examples, max_length=max_length, stride=qa.stride,
                         max_question_length=qa.max_question_length)
    logits = predict_spans(model, features, batch_size, device)
    return decode_answers(examples, features, logits, n_best=qa.n_best,
                          max_answer_length=qa.max_answer_length, allow_null=allow_null,
                          null_threshold=qa.null_threshold)


def score(model: nn.Module, tokenizer: Tokenizer, examples: Sequence[QAExample], qa: QAConfig,
          max_length: int, metric: str, allow_null: bool,
          device: Any) -> tuple[dict[str, float], dict[str, str]]:
    """EM / F1 of `model` on `examples`, and the predicted answer text per question id."""
    answers = answer_questions(model, tokenizer, examples, qa, max_length=max_length,
                               allow_null=allow_null, device=device)
    predictions = {qid: p.text for qid, p in answers.items()}
    golds = {ex.qid: [a.text for a in ex.answers] for ex in examples}
    return qa_metrics(predictions, golds, metric), predictions
