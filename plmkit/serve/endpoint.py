"""What `plmkit serve` answers, without HTTP: a request body → checked inputs → predictions.

One `Endpoint` wraps whatever `plmkit.load` returns (a PyTorch `Predictor` or an `OnnxPredictor`)
or, for a GPT-style decoder, a `Generator`. A request is one input object or
`{"inputs": [object, ...]}`; each object carries the fields `plmkit predict` shows for the
model's task (`text`, `text_pair`, `question`, `context`; `max_new_tokens` for seq2seq and
generation), and each answer is those fields plus the family's prediction, the line
`plmkit predict` (or `plmkit generate`) prints. Every input is checked here, before it joins a
batch, through the family's own `parse`, so a bad input fails alone (a `BadRequest` with an
HTTP status and one line) and never the batch it would have joined. The cost: each input is
parsed twice (here, then in `predict`), which is string work next to the model call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from plmkit.config import ServeConfig
from plmkit.runtime.errors import UserError
from plmkit.serve.forms import load
from plmkit.serve.onnx_predictor import OnnxPredictor, onnx_model_dir

GENERATIVE = ("seq2seq", "generation")
INSPECT_METHODS = ("integrated_gradients", "grad_x_input", "none")


class BadRequest(UserError):
    """A request the server refuses: an HTTP status and a one-line reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclasses.dataclass
class Item:
    """One checked input: what the answer shows, what the model reads, and its batch group."""

    shown: dict[str, Any]
    value: Any
    group: int | None = None  # inputs batch together only within a group (max_new_tokens)


def load_endpoint(path: str | Path, limits: ServeConfig, device: str = "auto") -> Endpoint:
    """The endpoint for the model in `path`: any fine-tuned task, an ONNX form, or a GPT decoder."""
    if onnx_model_dir(path) is None:
        from plmkit.checkpoint import read_hf_config  # torch: not needed by the ONNX forms
        from plmkit.tasks.lm.task import LM
        from plmkit.tasks.registry import family_of

        if family_of(read_hf_config(path)) is LM:
            from plmkit.serve.generator import Generator

            return Endpoint(Generator.load(path, device), limits)
    return Endpoint(load(path, device), limits)


class Endpoint:
    """A loaded model behind the server: `items(body)` checks, `run(values, group)` predicts."""

    def __init__(self, model: Any, limits: ServeConfig) -> None:
        self.model, self.limits = model, limits
        self.task = "generation" if not hasattr(model, "predict") else model.task
        settings = getattr(model, "settings", None)
        table = getattr(settings, "table", None)
        self.paired = self.task == "matching" or (
            self.task == "classification" and getattr(table, "text_pair_column", None) is not None)
        self.fields = {"qa": ("question", "context")}.get(
            self.task, ("text", "text_pair") if self.paired else ("text",))
        self.optional = ("max_new_tokens",) if self.task in GENERATIVE else ()

    # ------------------------------------------------------------------------- requests

    def items(self, body: Any) -> tuple[list[Item], bool]:
        """The checked inputs of a request body, and whether it was a list (`inputs`)."""
        if not isinstance(body, dict):
            raise BadRequest(422, f"the body must be a JSON object, got {_kind(body)}")
        task = body.get("task")
        if task is not None and task != self.task:
            raise BadRequest(422, f"task '{task}': this server's model is a {self.task} model")
        if "inputs" not in body:
            return [self.item({k: v for k, v in body.items() if k != "task"}, 0, "body")], False
        extra = sorted(set(body) - {"inputs", "task"})
        if extra:
            raise BadRequest(422, f"unknown field '{extra[0]}' next to inputs")
        inputs = body["inputs"]
        if not isinstance(inputs, list):
            raise BadRequest(422, f"inputs must be a list of objects, got {_kind(inputs)}")
        if not inputs:
            raise BadRequest(422, "inputs is empty")
        if len(inputs) > self.limits.max_items:
            raise BadRequest(413, f"inputs holds {len(inputs)} items; a request may hold at "
                             f"most {self.limits.max_items} (max_items)")
        return [self.item(value, i, f"inputs[{i}]") for i, value in enumerate(inputs)], True

    def item(self, obj: Any, index: int, where: str) -> Item:
        """One input object → an Item, checked field by field and by the family's parse."""
        if not isinstance(obj, dict):
            raise BadRequest(422, f"{where} must be an object with {', '.join(self.fields)}, "
                             f"got {_kind(obj)}")
        unknown = sorted(set(obj) - set(self.fields) - set(self.optional))
        if unknown:
            takes = ", ".join((*self.fields, *self.optional))
            raise BadRequest(422, f"{where}: unknown field '{unknown[0]}' (a {self.task} model "
                             f"takes {takes})")
        texts = [self._text(obj, name, where) for name in self.fields]
        value: Any = texts[0] if len(texts) == 1 else tuple(texts)
        group = self._max_new_tokens(obj, where)
        try:
            self._parse(value, index)
        except UserError as err:
            raise BadRequest(422, f"{where}: {err}") from None
        shown = dict(zip(("input",) if self.task == "generation" else self.fields, texts,
                         strict=True))
        return Item(shown, value, group)

    def _text(self, obj: dict, name: str, where: str) -> str:
        if name not in obj:
            raise BadRequest(422, f"{where}: missing field '{name}'")
        text = obj[name]
        if not isinstance(text, str):
            raise BadRequest(422, f"{where}.{name} must be a string, got {_kind(text)}")
        if not text.strip():
            raise BadRequest(422, f"{where}.{name} is empty")
        if len(text) > self.limits.max_text_chars:
            raise BadRequest(413, f"{where}.{name} is {len(text):,} characters; at most "
                             f"{self.limits.max_text_chars:,} (max_text_chars)")
        return text

    def _max_new_tokens(self, obj: dict, where: str) -> int | None:
        value = obj.get("max_new_tokens")
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadRequest(422, f"{where}.max_new_tokens must be an integer, got {_kind(value)}")
        if not 1 <= value <= self.limits.max_new_tokens:
            raise BadRequest(422, f"{where}.max_new_tokens is {value}; this server allows 1 to "
                             f"{self.limits.max_new_tokens}")
        return value

    def _parse(self, value: Any, index: int) -> None:
        if self.task == "generation":
            return  # a prompt is any non-empty text
        if isinstance(self.model, OnnxPredictor):
            self.model.view.parse(value, index)
        else:
            self.model.task_model.family.parse(value, index)

    # ------------------------------------------------------------------------- the model

    def run(self, values: Sequence[Any], group: int | None = None) -> list[dict[str, Any]]:
        """The predictions of one batch of checked values (blocking: call it off the event loop)."""
        if self.task == "generation":
            cfg = self.model.defaults
            if group is not None:
                cfg = dataclasses.replace(cfg, max_new_tokens=group)
            try:
                return [{"output": text} for text in self.model.generate(list(values), cfg)]
            except ValueError as err:  # models/generate.py: a prompt the model cannot continue
                raise BadRequest(422, f"generate: {err}") from None
        if self.task == "seq2seq" and group is not None:
            from plmkit.serve.predictor import Predictor

            tm = self.model.task_model
            generation = dataclasses.replace(tm.settings.generation, max_new_tokens=group)
            settings = dataclasses.replace(tm.settings, generation=generation)
            return Predictor(dataclasses.replace(tm, settings=settings)).predict(list(values))
        return self.model.predict(list(values))

    def inspect(self, value: Any, method: str) -> dict[str, Any]:
        """Attention maps of every layer and head, and (classifiers) token attributions."""
        unavailable = self.inspect_unavailable()
        if unavailable is not None:
            raise BadRequest(422, unavailable)
        from plmkit.serve import inspect  # torch

        if self.task == "matching":  # an embedder encodes each text alone: look at the first
            value = value[0]
        try:
            maps = inspect.attention_maps(self.model, value)
            scores = None
            if method != "none" and self.task == "classification":
                scores = inspect.attributions(self.model, value, method=method)
        except UserError as err:
            raise BadRequest(422, str(err)) from None
        maps["attentions"] = _rounded(maps["attentions"])
        return {**maps, "attributions": scores}

    def inspect_unavailable(self) -> str | None:
        """Why this model cannot be inspected, or None when it can."""
        if isinstance(self.model, OnnxPredictor):
            return "an ONNX form has no attention weights or gradients: serve the PyTorch model to inspect"
        if self.task in GENERATIVE:
            return "inspection covers encoder models (classifiers, taggers, QA readers, embedders)"
        return None

    def metadata(self) -> dict[str, Any]:
        """What the page and a client need to know: task, fields, labels, size, form, limits."""
        settings = getattr(self.model, "settings", None)
        labels = getattr(settings, "labels", None)
        limits = {k: getattr(self.limits, k) for k in
                  ("max_batch", "max_wait_ms", "queue_size", "max_body_bytes", "max_text_chars",
                   "max_items", "max_new_tokens")}
        return {"task": self.task, "subtask": getattr(settings, "task", self.task),
                "fields": list(self.fields), "optional": list(self.optional),
                "labels": list(labels.names) if labels is not None else None,
                "max_length": getattr(settings, "max_length", None),
                **self._size(), "limits": limits,
                "inspect": self.inspect_unavailable() is None,
                "inspect_note": self.inspect_unavailable()}

    def _size(self) -> dict[str, Any]:
        if isinstance(self.model, OnnxPredictor):
            file = self.model.model_dir / "model.onnx"
            return {"form": self.model.form, "source": str(self.model.model_dir),
                    "parameters": None, "bytes": file.stat().st_size}
        tm = self.model.task_model
        weights = tm.path / "model.safetensors"
        return {"form": "pytorch", "source": str(tm.path),
                "parameters": sum(p.numel() for p in tm.model.parameters()),
                "bytes": weights.stat().st_size if weights.is_file() else None}


def _kind(value: Any) -> str:
    """A JSON value's type, as a client wrote it."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "true/false",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _rounded(values: Any, places: int = 4) -> Any:
    """Nested lists of floats at `places` decimals: a quarter of the JSON, nothing a heat map shows."""
    if isinstance(values, list):
        return [_rounded(v, places) for v in values]
    return round(values, places)
