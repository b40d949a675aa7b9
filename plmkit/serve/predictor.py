"""The one prediction API: a fine-tuned model directory of any task → predictions for raw inputs.

`Predictor.load` (= `plmkit.load`) reads whatever task a directory holds, through the task
registry (tasks/registry.py): a plmkit run or a Hugging Face directory of a known
architecture. `predict` takes Python inputs as the family parses them (a text or a
(text, text) pair for classifiers and embedders, a text for taggers and seq2seq models, a
(question, context) pair for QA) and returns the same dicts `plmkit predict` prints, which are
the predictions `evaluate` scores. The server, export and distillation build on this object.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from plmkit.runtime.errors import UserError
from plmkit.tasks.contract import Prediction, TaskModel
from plmkit.tasks.registry import load_task_model


class Predictor:
    """A loaded model with everything it needs to turn raw inputs into predictions."""

    def __init__(self, task_model: TaskModel, batch_size: int = 64) -> None:
        if task_model.family.predict is None:
            raise UserError(f"{task_model.path}: {task_model.family.description} has no "
                            "predictions; use plmkit.load_generator")
        self.task_model = task_model
        self.batch_size = batch_size

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> Predictor:
        """Load a fine-tuned model directory (or a run directory holding final/)."""
        return cls(load_task_model(path, device))

    @property
    def task(self) -> str:
        """The task family's name: classification, ner, qa, matching or seq2seq."""
        return self.task_model.family.name

    @property
    def settings(self) -> Any:
        """What the model was fine-tuned with: labels, max length, decoding settings, ..."""
        return self.task_model.settings

    def predict(self, inputs: Sequence[Any]) -> list[Prediction]:
        """One prediction dict per input, in order."""
        if isinstance(inputs, str):
            raise UserError("predict: expected a list of inputs, got one string")
        family = self.task_model.family
        rows = [family.parse(value, i) for i, value in enumerate(inputs)]
        return family.predict(self.task_model, rows, self.batch_size) if rows else []
