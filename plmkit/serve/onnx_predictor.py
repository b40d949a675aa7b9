"""`plmkit.load` for the ONNX forms (fp32 and int8): the same predictions, without torch.

An ONNX directory is what `plmkit export format=onnx|int8` writes: model.onnx, the source's
config.json (with `plmkit_form` added) and its tokenizer. Prediction is the family's torch-free
view (tasks/onnx_views.py) around an ONNX Runtime session, so a deployment installs
`onnxruntime`, `tokenizers` and `numpy` only; nothing here imports torch.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from plmkit.runtime.errors import UserError
from plmkit.tasks.onnx_views import OnnxView, view_of
from plmkit.text.tokenizer import load_tokenizer

MODEL_FILE = "model.onnx"


def onnx_model_dir(path: str | Path) -> Path | None:
    """The directory holding model.onnx: `path` itself or its final/ (a run); else None."""
    path = Path(path)
    for directory in (path, path / "final"):
        if (directory / MODEL_FILE).is_file():
            return directory
    return None


class OnnxSession:
    """model.onnx on ONNX Runtime's CPU provider: NumPy encoder inputs → the graph's outputs."""

    def __init__(self, file: Path, threads: int = 0) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise UserError(f"{file}: an ONNX model needs onnxruntime (pip install onnxruntime)") from None
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own untyped errors
            reason = (str(err).splitlines() or ["unreadable"])[0][:200]
            raise UserError(f"{file}: cannot load the ONNX model ({reason})") from None
        self.input_names = [i.name for i in self.session.get_inputs()]

    def __call__(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None, {name: feeds[name] for name in self.input_names})


class OnnxPredictor:
    """A loaded ONNX form with what it needs to turn raw inputs into predictions."""

    def __init__(self, model_dir: Path, view: OnnxView, settings: Any, session: OnnxSession,
                 tokenizer: Any, form: str, batch_size: int = 64) -> None:
        self.model_dir, self.view, self.settings = model_dir, view, settings
        self.session, self.tokenizer, self.form, self.batch_size = session, tokenizer, form, batch_size

    @classmethod
    def load(cls, path: str | Path, threads: int = 0) -> OnnxPredictor:
        model_dir = onnx_model_dir(path)
        if model_dir is None:
            raise UserError(f"{path}: no {MODEL_FILE} here (export one with plmkit export format=onnx)")
        config_file = model_dir / "config.json"
        try:
            hf = json.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise UserError(f"{config_file}: cannot read ({err})") from None
        view = view_of(hf)
        if view is None:
            task = (hf.get("plmkit_task") or {}).get("task") or (hf.get("architectures") or ["?"])[0]
            raise UserError(f"{model_dir}: plmkit has no ONNX predictor for {task} models")
        form = (hf.get("plmkit_form") or {}).get("form", "onnx")
        if not any((model_dir / name).is_file() for name in ("tokenizer.json", "vocab.txt")):
            raise UserError(f"{model_dir}: an ONNX form without its tokenizer (tokenizer.json); "
                            "copy it from the model it was exported from, or export again")
        return cls(model_dir, view, view.settings_from_config(hf, model_dir),
                   OnnxSession(model_dir / MODEL_FILE, threads), load_tokenizer(model_dir), form)

    @property
    def task(self) -> str:
        return self.view.name

    def predict(self, inputs: Sequence[Any]) -> list[dict[str, Any]]:
        """One prediction dict per input, in order (the schema of plmkit.load's PyTorch form)."""
        if isinstance(inputs, str):
            raise UserError("predict: expected a list of inputs, got one string")
        rows = [self.view.parse(value, i) for i, value in enumerate(inputs)]
        if not rows:
            return []
        return self.view.predict(self.session, self.tokenizer, rows, self.settings, self.batch_size)
