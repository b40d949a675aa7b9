"""`plmkit predict`: raw inputs → predictions as JSON lines, for whatever task a model holds.

Inputs come from the command line or a file, read as the model's family reads them
(tasks/*/task.py `inputs`: texts, TAB-separated pairs, or questions in contexts); each output
line is the input as shown, then the family's prediction (a label and probabilities, entities
with character offsets, an answer span, a similarity, a generated text).
"""

from __future__ import annotations

from plmkit.config import PredictConfig
from plmkit.runtime.errors import UserError
from plmkit.runtime.files import write_json_lines
from plmkit.tasks.registry import load_task_model

BATCH_SIZE = 64


def run(cfg: PredictConfig) -> list[dict]:
    """Predict `cfg.text` (or question=/context=) or each input of `cfg.file`; prints or writes JSONL."""
    tm = load_task_model(cfg.model)
    if tm.family.predict is None:
        raise UserError(f"predict: {tm.path} is {tm.family.description}: use plmkit generate")
    shown, rows = zip(*tm.family.inputs(cfg, tm.settings), strict=True)
    predictions = tm.family.predict(tm, list(rows), BATCH_SIZE)
    results = [{**s, **p} for s, p in zip(shown, predictions, strict=True)]
    write_json_lines(results, cfg.output)
    return results
