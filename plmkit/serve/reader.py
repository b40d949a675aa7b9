"""Question-answering API: a fine-tuned extractive QA model → answer spans in raw contexts.

`Reader.load` (= `plmkit.load_reader`) reads a `finetune task=qa` run or any Hugging Face
`BertForQuestionAnswering` directory through the task registry, and answers with the settings
the model was fine-tuned with (windows, n-best, "no answer" and its threshold; a foreign
directory gets QAConfig's defaults scaled to its length and no "no answer"). Answers come from
tasks/qa/task.py, the path `evaluate` scores, so a long context is windowed and decoded the
same way here as there. `qa` may be changed on a loaded reader (a threshold, say).

Key choice: an `Answer` always satisfies `context[start:end] == text`. "No answer" is text ""
with start = end = -1 rather than None, so offsets stay plain ints in Python and in JSON; the
cost is that a caller must test `answer.found` (or `start >= 0`) before using the offsets.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from plmkit.config import QAConfig
from plmkit.runtime.errors import UserError
from plmkit.tasks.contract import TaskModel
from plmkit.tasks.qa.data import QAExample
from plmkit.tasks.qa.task import NO_ANSWER, QA, predict
from plmkit.tasks.registry import load_task_model


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

    def __init__(self, task_model: TaskModel, batch_size: int = 32) -> None:
        self.task_model = task_model
        self.batch_size = batch_size

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> Reader:
        """Load a fine-tuned QA directory (or a run directory holding final/)."""
        return cls(load_task_model(path, device, family=QA))

    @property
    def qa(self) -> QAConfig:
        return self.task_model.settings.qa

    @qa.setter
    def qa(self, qa: QAConfig) -> None:
        self.task_model.settings = dataclasses.replace(self.task_model.settings, qa=qa)

    @property
    def max_length(self) -> int:
        return self.task_model.settings.max_length

    @property
    def allow_null(self) -> bool:
        """Whether "no answer" may be the answer (a SQuAD v2-style model)."""
        return self.task_model.settings.allow_null

    def answer(self, questions: Sequence[str], contexts: Sequence[str]) -> list[Answer]:
        """The answer to each question in the context at the same position."""
        if len(questions) != len(contexts):
            raise UserError(f"answer: {len(questions)} question(s) but {len(contexts)} context(s)")
        rows = [QA.parse(pair, i) for i, pair in enumerate(zip(questions, contexts, strict=True))]
        return self.answer_examples(rows)

    def answer_examples(self, examples: Sequence[QAExample]) -> list[Answer]:
        """The answer to each example's question, in order (its gold answers are not used)."""
        found = predict(self.task_model, list(examples), self.batch_size)
        return [Answer(p["answer"], p["start"], p["end"], p["score"]) for p in found]
