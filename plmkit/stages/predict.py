"""`plmkit predict`: raw inputs → predictions as JSON lines, for whatever task a model holds.

Inputs come from the command line or a file, read as the model's family reads them
(tasks/*/task.py `inputs`: texts, TAB-separated pairs, or questions in contexts); each output
line is the input as shown, then the family's prediction (a label and probabilities, entities
with character offsets, an answer span, a similarity, a generated text). An ONNX form
(`plmkit export format=onnx|int8`) predicts through ONNX Runtime, with the same output.
"""

from __future__ import annotations

from plmkit.config import PredictConfig
from plmkit.runtime.errors import UserError
from plmkit.runtime.files import write_json_lines
from plmkit.serve.onnx_predictor import OnnxPredictor, onnx_model_dir

BATCH_SIZE = 64


def run(cfg: PredictConfig) -> list[dict]:
    """Predict `cfg.text` (or question=/context=) or each input of `cfg.file`; prints or writes JSONL."""
    if onnx_model_dir(cfg.model) is not None:  # an exported ONNX form: no torch
        onnx = OnnxPredictor.load(cfg.model)
        shown, rows = zip(*onnx.view.inputs(cfg, onnx.settings), strict=True)
        predictions = onnx.view.predict(onnx.session, onnx.tokenizer, list(rows), onnx.settings,
                                        BATCH_SIZE)
    else:
        from plmkit.tasks.registry import load_task_model  # torch

        tm = load_task_model(cfg.model)
        if tm.family.predict is None:
            raise UserError(f"predict: {tm.path} is {tm.family.description}: use plmkit generate")
        shown, rows = zip(*tm.family.inputs(cfg, tm.settings), strict=True)
        predictions = tm.family.predict(tm, list(rows), BATCH_SIZE)
    results = [{**s, **p} for s, p in zip(shown, predictions, strict=True)]
    write_json_lines(results, cfg.output)
    return results
