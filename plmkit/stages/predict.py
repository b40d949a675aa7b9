"""`plmkit predict`: raw texts → predicted labels with probabilities (or, for a NER model,
entities with character offsets), as JSON lines."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from plmkit.checkpoint import read_hf_config
from plmkit.config import PredictConfig
from plmkit.runtime import UserError, atomic_write_text
from plmkit.serve.pipeline import Classifier
from plmkit.serve.tagger import Tagger


def run(cfg: PredictConfig) -> list[dict]:
    """Predict `cfg.text` or each line of `cfg.file`; prints or writes JSONL."""
    if not cfg.text and not cfg.file:
        raise UserError("predict: nothing to predict (give text=... or file=...)")
    if (read_hf_config(cfg.model).get("plmkit_task") or {}).get("task") == "ner":
        return _predict_entities(cfg)
    clf = Classifier.load(cfg.model)
    texts, pairs = list(cfg.text), None
    if cfg.file:
        texts, pairs = read_lines(cfg.file, paired=clf.table.text_pair_column is not None)
        if not texts:
            raise UserError(f"{cfg.file}: no text to predict")
    results = [{"text": t, **({"text_pair": pairs[i]} if pairs else {}), "label": p.label,
                "probabilities": p.probabilities}
               for i, (t, p) in enumerate(zip(texts, clf.predict(texts, pairs)))]
    _write(cfg, results)
    return results


def _predict_entities(cfg: PredictConfig) -> list[dict]:
    """NER: the entities of each text with character offsets, as JSON lines."""
    tagger = Tagger.load(cfg.model)
    texts = read_lines(cfg.file, paired=False)[0] if cfg.file else list(cfg.text)
    results = [{"text": t, "entities": [e.__dict__ for e in entities]}
               for t, entities in zip(texts, tagger.predict(texts), strict=True)]
    _write(cfg, results)
    return results


def _write(cfg: PredictConfig, results: list[dict]) -> None:
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results)
    if cfg.output:
        atomic_write_text(cfg.output, lines)
    else:
        sys.stdout.write(lines)


def read_lines(path: str | Path, paired: bool) -> tuple[list[str], list[str] | None]:
    """Non-blank lines; for a sentence-pair model, a TAB separates the two sentences."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    texts, pairs = [], []
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8").rstrip("\r\n")
            except UnicodeDecodeError as err:
                raise UserError(f"{path}:{number}: not valid UTF-8 (column {err.start + 1})") from None
            if not line.strip():
                continue
            first, tab, second = line.partition("\t") if paired else (line, "", "")
            if paired and not tab:
                raise UserError(f"{path}:{number}: expected two sentences separated by a TAB")
            texts.append(first)
            pairs.append(second)
    return texts, pairs if paired else None
