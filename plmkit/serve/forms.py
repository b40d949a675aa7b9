"""`plmkit.load`: one entry for every form a model directory can hold.

An ONNX form (fp32 or int8, from `plmkit export`) loads through serve/onnx_predictor.py, which
never imports torch, so a deployment without torch can call `plmkit.load`; any other directory
(a plmkit run or a Hugging Face directory) loads as a PyTorch `Predictor`, importing torch only then.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from plmkit.serve.onnx_predictor import OnnxPredictor, onnx_model_dir


def load(path: str | Path, device: str = "auto") -> Any:
    """A predictor for the fine-tuned model in `path`: `.predict(inputs)`, `.task`, `.settings`."""
    if onnx_model_dir(path) is not None:
        return OnnxPredictor.load(path)
    from plmkit.serve.predictor import Predictor  # torch: not needed by the ONNX forms

    return Predictor.load(path, device)
