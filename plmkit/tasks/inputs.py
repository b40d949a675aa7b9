"""Raw inputs to predict on: texts given on the command line or one per line of a file.

Shared by every family whose input is a text or a sentence pair (classification, tagging,
matching, seq2seq; QA reads questions in contexts instead). A TAB separates the two sentences
of a pair, on the command line (`text='A<TAB>B'`) as in a file.
"""

from __future__ import annotations

from pathlib import Path

from plmkit.config import PredictConfig
from plmkit.runtime.errors import UserError


def prediction_texts(cfg: PredictConfig, paired: bool) -> list[tuple[str, str | None]]:
    """(text, second sentence or None) for each input of `cfg`, checked."""
    if cfg.question or cfg.context:
        raise UserError(f"predict: question=/context= are for a QA model; {cfg.model} is not one")
    if not cfg.text and not cfg.file:
        raise UserError("predict: nothing to predict (give text=... or file=...)")
    if cfg.file:
        texts, pairs = read_lines(cfg.file, paired)
        if not texts:
            raise UserError(f"{cfg.file}: no text to predict")
        return list(zip(texts, pairs or [None] * len(texts), strict=True))
    if not paired:
        return [(t, None) for t in cfg.text]
    split = [t.partition("\t") for t in cfg.text]
    if any(not tab for _, tab, _ in split):
        raise UserError("predict: this model reads sentence pairs: give text='A<TAB>B'")
    return [(a, b) for a, _, b in split]


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
