"""`plmkit predict`: raw texts → predicted labels with probabilities (or, for a NER model,
entities with character offsets; for a QA model, the answer span of each question in its
context; for a sentence embedder, the cosine similarity of each pair),
as JSON lines."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from plmkit.checkpoint import read_hf_config
from plmkit.config import PredictConfig
from plmkit.runtime.errors import UserError
from plmkit.runtime.files import atomic_write_text
from plmkit.serve.embedder import Embedder, is_embedder
from plmkit.serve.pipeline import Classifier
from plmkit.serve.reader import Reader, is_reader, questions_in_contexts
from plmkit.serve.tagger import Tagger
from plmkit.tasks.qa.data import read_qa_inputs


def run(cfg: PredictConfig) -> list[dict]:
    """Predict `cfg.text` or each line of `cfg.file`; prints or writes JSONL."""
    if is_reader(read_hf_config(cfg.model)):
        return _predict_answers(cfg)
    if cfg.question or cfg.context:
        raise UserError(f"predict: question=/context= are for a QA model; {cfg.model} is not one")
    if not cfg.text and not cfg.file:
        raise UserError("predict: nothing to predict (give text=... or file=...)")
    if is_embedder(read_hf_config(cfg.model)):
        return _predict_similarity(cfg)
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


def _predict_similarity(cfg: PredictConfig) -> list[dict]:
    """Sentence embedder: the cosine similarity of each TAB-separated pair, as JSON lines."""
    if cfg.file:
        texts, pairs = read_lines(cfg.file, paired=True)
    else:
        split = [t.partition("\t") for t in cfg.text]
        if any(not tab for _, tab, _ in split):
            raise UserError("predict: a sentence embedder scores pairs: give text='A<TAB>B'")
        texts, pairs = [a for a, _, _ in split], [b for _, _, b in split]
    if not texts:
        raise UserError(f"{cfg.file}: no pairs to score")
    similarity = Embedder.load(cfg.model).similarity(texts, pairs)
    results = [{"text": a, "text_pair": b, "similarity": float(s)}
               for a, b, s in zip(texts, pairs, similarity, strict=True)]
    _write(cfg, results)
    return results


def _predict_answers(cfg: PredictConfig) -> list[dict]:
    """QA: the answer of each question with character offsets into its context, as JSON lines;
    "id" (not "context") for questions read from a SQuAD/CMRC file."""
    if cfg.text:
        raise UserError("predict: a QA model takes question=... context=... (or file=...), not text=")
    if cfg.file and (cfg.question or cfg.context):
        raise UserError("predict: give question=... context=... or file=..., not both")
    if not cfg.file and not cfg.question and not cfg.context:
        raise UserError("predict: nothing to predict (give question=... context=..., or file=...)")
    if cfg.file:
        examples, from_squad = read_qa_inputs(cfg.file)
    else:
        examples, from_squad = questions_in_contexts(cfg.question, cfg.context), False
    answers = Reader.load(cfg.model).answer_examples(examples)
    results = [{**({"id": ex.qid} if from_squad else {}), "question": ex.question,
                **({} if from_squad else {"context": ex.context}), "answer": a.text,
                "start": a.start, "end": a.end, "score": a.score}
               for ex, a in zip(examples, answers, strict=True)]
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
