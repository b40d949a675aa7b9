"""plmkit: from raw text to pretrained and fine-tuned Transformers, with Hugging Face checkpoints.

The public API is the stage functions (each the same function its CLI verb runs), `load` (a
predictor for whatever task a fine-tuned directory holds: `load(dir).predict(inputs)`), and the
task-specific views of a text generator (`load_generator`), an extractive QA reader
(`load_reader`) and a sentence embedder (`load_embedder`: vectors, similarity, search). Imports are lazy so
`import plmkit` stays cheap, and `load` of an ONNX form imports no torch.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_STAGES = {
    "train_tokenizer": "tokenizer",
    "prepare": "prepare",
    "pretrain": "pretrain",
    "finetune": "finetune",
    "evaluate": "evaluate",
    "distill": "distill",
    "export": "export",
    "predict": "predict",
    "generate": "generate",
    "demo": "recipe",
    "suite": "suite",  # plmkit.suite(SuiteConfig): `plmkit evaluate --suite FILE.yaml`
}

__all__ = [*_STAGES, "load", "load_generator", "load_reader", "load_embedder", "__version__"]


def __getattr__(name: str) -> Any:
    import importlib

    if name in _STAGES:
        return importlib.import_module(f"plmkit.stages.{_STAGES[name]}").run
    if name == "load":
        from plmkit.serve.forms import load

        return load
    if name == "load_generator":
        from plmkit.serve.generator import Generator

        return Generator.load
    if name == "load_reader":
        from plmkit.serve.reader import Reader

        return Reader.load
    if name == "load_embedder":
        from plmkit.serve.embedder import Embedder

        return Embedder.load
    raise AttributeError(f"module 'plmkit' has no attribute {name!r}")
