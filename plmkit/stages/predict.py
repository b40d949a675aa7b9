"""`plmkit predict`: raw texts → predicted labels with probabilities, as JSON lines."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from plmkit.config import PredictConfig
from plmkit.runtime import UserError, atomic_write_text
from plmkit.serve.pipeline import Classifier


def run(cfg: PredictConfig) -> list[dict]:
    """Predict `cfg.text` or each line of `cfg.file`; prints or writes JSONL."""
    texts, pairs = list(cfg.text), None
    if cfg.file:
        texts, pairs = _read_lines(Path(cfg.file))
    if not texts:
        raise UserError("predict: nothing to predict (give text=... or file=...)")
    clf = Classifier.load(cfg.model)
    results = [{"text": t, **({"text_pair": pairs[i]} if pairs else {}), "label": p.label,
                "probabilities": p.probabilities}
               for i, (t, p) in enumerate(zip(texts, clf.predict(texts, pairs)))]
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results)
    if cfg.output:
        atomic_write_text(cfg.output, lines)
    else:
        sys.stdout.write(lines)
    return results


def _read_lines(path: Path) -> tuple[list[str], list[str] | None]:
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    texts, pairs = [], []
    try:
        with path.open(encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\n")
                if not line.strip():
                    continue
                first, _, second = line.partition("\t")
                texts.append(first)
                pairs.append(second)
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not valid UTF-8 (byte {err.start})") from None
    return texts, pairs if any(pairs) else None
