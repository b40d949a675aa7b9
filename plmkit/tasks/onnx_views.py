"""The task families as their ONNX forms run them: reading, encoding and decoding, without torch.

A view holds what a deployment needs besides the network: the settings config.json recorded,
how a Python input or a `plmkit predict` input becomes a row, and `predict(run, …)`, which
turns rows into the same prediction dicts the PyTorch family returns, given `run`, the
network's call on NumPy arrays (an ONNX Runtime session). Importing this module imports no torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plmkit.tasks.classification import schema as classification


@dataclass(frozen=True)
class OnnxView:
    name: str  # the family's name, as TaskFamily.name
    tasks: tuple[str, ...]  # the `plmkit_task.task` values it reads
    architectures: tuple[str, ...]  # Hugging Face classes it reads when no task is recorded
    outputs: tuple[str, ...]  # the ONNX graph's output names, in order
    settings_from_config: Callable[[dict, Path], Any]
    parse: Callable[[Any, int], Any]
    inputs: Callable[[Any, Any], list[tuple[dict, Any]]]
    predict: Callable[..., list[dict[str, Any]]]  # (run, tokenizer, rows, settings, batch_size)


VIEWS: tuple[OnnxView, ...] = (
    OnnxView(
        name="classification",
        tasks=("classification", "regression"),
        architectures=("BertForSequenceClassification",),
        outputs=("logits",),
        settings_from_config=classification.settings_from_config,
        parse=classification.parse,
        inputs=classification.inputs,
        predict=classification.predict_with,
    ),
)


def view_of(hf_config: dict) -> OnnxView | None:
    """The view for a config.json (by its recorded task, else its architecture), or None."""
    task = (hf_config.get("plmkit_task") or {}).get("task")
    architecture = (hf_config.get("architectures") or [None])[0]
    for view in VIEWS:
        if task in view.tasks or (task is None and architecture in view.architectures):
            return view
    return None
