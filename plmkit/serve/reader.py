"""Question-answering API: a fine-tuned extractive QA model → answer spans in raw contexts.

`Reader.load` reads a `finetune task=qa` run or any Hugging Face `BertForQuestionAnswering`
directory. A plmkit run recorded its QA settings in config.json (max_length, window stride,
max_answer_length, n_best, whether "no answer" is allowed and its threshold) and the reader
answers with exactly those; a foreign directory gets QAConfig's defaults and no "no answer".
Answers go through tasks/qa/answers.py `answer_questions`, the path `evaluate` scores, so a long
context is windowed and decoded the same way here as there.

Key choice: an `Answer` always satisfies `context[start:end] == text`. "No answer" (a SQuAD
v2-style model whose no-answer score wins) is text "" with start = end = -1 rather than None,
so offsets stay plain ints in Python and in JSON; the cost is that a caller must test
`answer.found` (or `start >= 0`) before using the offsets as positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from tokenizers import Tokenizer

from plmkit.checkpoint import load_into, read_checkpoint, resolve_model_dir
from plmkit.config import QAConfig, from_dict
from plmkit.models.heads import SpanExtractor
from plmkit.runtime.devices import pick_device
from plmkit.runtime.errors import UserError
from plmkit.tasks.qa.answers import answer_questions
from plmkit.tasks.qa.data import QAExample
from plmkit.tasks.qa.features import QAPrediction
from plmkit.text.tokenizer import load_tokenizer

ARCHITECTURE = "BertForQuestionAnswering"
NO_ANSWER = -1  # start and end of the empty answer


@dataclass(frozen=True)
class Answer:
    """An answer in its context: `context[start:end] == text`; no answer is ("", -1, -1)."""

    text: str
    start: int  # character offset in the context; NO_ANSWER when there is no answer
    end: int  # exclusive
    score: float  # start + end logit of the span (of [CLS], the no-answer score, when empty)

    @property
    def found(self) -> bool:
        """False for "no answer"."""
        return self.start != NO_ANSWER


class Reader:
    """A loaded extractive QA model with its tokenizer and decoding settings."""

    def __init__(self, model: SpanExtractor, tokenizer: Tokenizer, qa: QAConfig,
                 max_length: int, device: torch.device, batch_size: int = 32) -> None:
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.qa = qa
        self.max_length = max_length
        self.allow_null = bool(qa.version_2)
        self.device = device
        self.batch_size = batch_size

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> Reader:
        """Load a fine-tuned QA directory (or a run directory holding final/)."""
        model_dir = resolve_model_dir(path)
        checkpoint = read_checkpoint(model_dir)
        hf = checkpoint.hf_config
        info = hf.get("plmkit_task") or {}
        architecture = (hf.get("architectures") or [None])[0]
        if (info.get("task", "qa") != "qa" or architecture not in (None, ARCHITECTURE)
                or checkpoint.cfg.family != "bert"):
            kind = info.get("task") or architecture or f"family {checkpoint.cfg.family}"
            raise UserError(f"{model_dir}: not an extractive QA model ({kind}); fine-tune one "
                            "with task=qa")
        qa = from_dict(QAConfig, info.get("qa"), "plmkit_task.qa")
        model = SpanExtractor(checkpoint.cfg)
        load_into(model, checkpoint, require_heads=True, architecture=ARCHITECTURE)
        max_length = min(info.get("max_length", 384), checkpoint.cfg.max_position)
        if not info and max_length < 384:  # a Transformers directory: the usual windows, scaled
            qa = replace(qa, stride=max_length // 3, max_question_length=max_length // 6)
        return cls(model, load_tokenizer(model_dir), qa, max_length, pick_device(device))

    def answer(self, questions: Sequence[str], contexts: Sequence[str]) -> list[Answer]:
        """The answer to each question in the context at the same position."""
        return self.answer_examples(questions_in_contexts(questions, contexts))

    def answer_examples(self, examples: Sequence[QAExample]) -> list[Answer]:
        """The answer to each example's question, in order (its gold answers are not used)."""
        if not examples:
            return []
        keyed = [replace(ex, qid=str(i)) for i, ex in enumerate(examples)]  # ids may repeat
        predictions = answer_questions(self.model, self.tokenizer, keyed, self.qa,
                                       max_length=self.max_length, allow_null=self.allow_null,
                                       device=self.device, batch_size=self.batch_size)
        return [_answer(predictions[ex.qid]) for ex in keyed]


def is_reader(hf_config: dict) -> bool:
    """True for the config.json of an extractive QA model, plmkit's or Transformers'."""
    task = (hf_config.get("plmkit_task") or {}).get("task")
    architecture = (hf_config.get("architectures") or [None])[0]
    return task == "qa" or (task is None and architecture == ARCHITECTURE)


def questions_in_contexts(questions: Sequence[str], contexts: Sequence[str]) -> list[QAExample]:
    """One example per (question, context) pair, checked: as many contexts as questions, none empty."""
    if len(questions) != len(contexts):
        raise UserError(f"predict: {len(questions)} question(s) but {len(contexts)} context(s); "
                        "give one context per question, in the same order")
    for i, (question, context) in enumerate(zip(questions, contexts, strict=True)):
        if not question.strip():
            raise UserError(f"predict: question {i + 1} is empty")
        if not context.strip():
            raise UserError(f"predict: context {i + 1} is empty")
    pairs = zip(questions, contexts, strict=True)
    return [QAExample(str(i), q, c, ()) for i, (q, c) in enumerate(pairs)]


def _answer(prediction: QAPrediction) -> Answer:
    if prediction.start is None or prediction.end is None:
        return Answer("", NO_ANSWER, NO_ANSWER, prediction.null_score)
    return Answer(prediction.text, prediction.start, prediction.end, prediction.score)
