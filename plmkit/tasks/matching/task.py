"""Semantic matching (sentence embeddings), as a task contract.

A fine-tuned model is a Hugging Face `BertModel` directory (what sentence-transformers models
are) whose config.json records the pooling, max length and columns. Any BERT-family directory
loads as an embedder: how texts become vectors comes from, in order, what plmkit recorded, the
sentence-transformers files a hub model ships (`1_Pooling/config.json`,
`sentence_bert_config.json`), else mean pooling over 128 tokens, the usual choice for an
encoder never trained to pool; only the encoder's weights are read, so a classifier's
directory embeds too. A prediction is the cosine similarity of a pair.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from plmkit.config import (
    FinetuneConfig,
    MatchingConfig,
    ModelConfig,
    PredictConfig,
    TableConfig,
    from_dict,
    to_dict,
)
from plmkit.models.heads import SentenceEmbedder
from plmkit.runtime.errors import UserError
from plmkit.tasks.contract import Prediction, TaskFamily, TaskModel, jsonl_dump
from plmkit.tasks.inputs import prediction_texts
from plmkit.tasks.matching.embeddings import (
    collate_text_pairs,
    contrastive_loss,
    embed_texts,
    encode_text_pairs,
    gold_scores,
    positive_pairs,
    score_pairs,
)
from plmkit.tasks.tables import Example, read_table
from plmkit.text.tokenizer import special_ids

DEFAULT_MAX_LENGTH = 128


@dataclasses.dataclass(frozen=True)
class EmbedderSettings:
    max_length: int
    pooling: str  # cls | mean
    table: TableConfig
    matching: MatchingConfig = dataclasses.field(default_factory=MatchingConfig)


def configure(cfg: FinetuneConfig, tokenizer: Tokenizer) -> EmbedderSettings:
    if cfg.table.text_pair_column is None:
        raise UserError("finetune: task matching needs sentence pairs: set table.text_pair_column")
    if cfg.train.batch_size < 2:
        raise UserError(f"finetune: train.batch_size={cfg.train.batch_size}: in-batch negatives "
                        "need at least 2 pairs")
    contrastive_loss(cfg.matching.temperature)  # checks the temperature up front
    return EmbedderSettings(cfg.max_length, cfg.pooling, cfg.table, cfg.matching)


def read(path: str | Path, settings: EmbedderSettings, limit: int = 0) -> list[Example]:
    """The pairs of a file, every label checked as a number (a bad one fails here, naming its line)."""
    rows = read_table(path, settings.table, limit=limit)
    gold_scores(rows)
    return rows


def encode(tokenizer: Tokenizer, rows: list[Example], settings: EmbedderSettings):
    """The positive pairs alone (label "1", or a score ≥ matching.min_score): in-batch negatives
    need no others, at the cost that hard negatives a file holds teach the model nothing."""
    pairs = positive_pairs(rows, settings.matching.min_score)
    return encode_text_pairs(tokenizer, pairs, settings.max_length)


def build(cfg: ModelConfig, settings: EmbedderSettings) -> SentenceEmbedder:
    return SentenceEmbedder(cfg, pooling=settings.pooling)


def settings_to_config(settings: EmbedderSettings) -> dict[str, Any]:
    info = {"task": "matching", "pooling": settings.pooling, "max_length": settings.max_length,
            "table": to_dict(settings.table)}
    return {"plmkit_pooling": settings.pooling, "plmkit_task": info}


def settings_from_config(hf: dict, cfg: ModelConfig, model_dir: Path) -> EmbedderSettings:
    info = hf.get("plmkit_task") or {}
    if info.get("task") != "matching":
        info = {}  # another task's settings say nothing about embedding
    pooling, max_length = hub_settings(model_dir)
    max_length = min(info.get("max_length") or max_length, cfg.max_position)
    table = from_dict(TableConfig, info.get("table"), "plmkit_task.table")
    return EmbedderSettings(max_length, info.get("pooling") or pooling, table)


def hub_settings(model_dir: Path) -> tuple[str, int]:
    """Pooling and max length from a sentence-transformers directory; mean and 128 without one."""
    pooling, max_length = "mean", DEFAULT_MAX_LENGTH
    pooling_file = model_dir / "1_Pooling" / "config.json"
    if pooling_file.is_file():
        modes = _json(pooling_file)
        if modes.get("pooling_mode_cls_token"):
            pooling = "cls"
        elif not modes.get("pooling_mode_mean_tokens"):
            raise UserError(f"{pooling_file}: only cls or mean pooling is supported")
    settings_file = model_dir / "sentence_bert_config.json"
    if settings_file.is_file():
        max_length = int(_json(settings_file).get("max_seq_length") or max_length)
    return pooling, max_length


def _json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object")
    return data


def embed(tm: TaskModel, texts: list[str], batch_size: int) -> np.ndarray:
    """Unit-length embeddings (N, H) of `texts`, in order."""
    return embed_texts(tm.model, tm.tokenizer, texts, max_length=tm.settings.max_length,
                       batch_size=batch_size, device=tm.device)


def score(tm: TaskModel, rows: list[Example], batch_size: int) -> tuple[dict, list[Prediction]]:
    """Spearman / Pearson (graded labels) or AUC and recall@k (0/1), and each pair's cosine."""
    vectors: dict[str, np.ndarray] = {}

    def embed_and_keep(texts: list[str]) -> np.ndarray:
        out = embed(tm, texts, batch_size)
        vectors.update(zip(texts, out, strict=True))
        return out

    metrics = score_pairs(embed_and_keep, rows)
    return metrics, [{"similarity": float(vectors[r.text] @ vectors[str(r.text_pair)])} for r in rows]


def predict(tm: TaskModel, rows: list[Example], batch_size: int) -> list[Prediction]:
    texts = list(dict.fromkeys([r.text for r in rows] + [str(r.text_pair) for r in rows]))
    vectors = dict(zip(texts, embed(tm, texts, batch_size), strict=True))
    return [{"similarity": float(vectors[r.text] @ vectors[str(r.text_pair)])} for r in rows]


def parse(value: Any, index: int) -> Example:
    """A (text, text) pair."""
    if isinstance(value, str) or len(value) != 2:
        raise UserError(f"predict: input {index + 1}: a sentence embedder scores (text, text) pairs")
    return Example(value[0], value[1], None, index + 1)


def inputs(cfg: PredictConfig, settings: EmbedderSettings) -> list[tuple[dict, Example]]:
    rows = [parse(pair, i) for i, pair in enumerate(prediction_texts(cfg, paired=True))]
    return [(_shown(r), r) for r in rows]


def _shown(row: Example) -> dict[str, Any]:
    return {"text": row.text, "text_pair": row.text_pair}


MATCHING = TaskFamily(
    name="matching",
    tasks=("matching",),
    architectures=("BertModel",),
    model_family="bert",
    description="a sentence embedder",
    build=build,
    settings_from_config=settings_from_config,
    configure=configure,
    read=read,
    encode=encode,
    collate=collate_text_pairs,
    loss=lambda settings: contrastive_loss(settings.matching.temperature),
    settings_to_config=settings_to_config,
    random_init=lambda tokenizer: {"pad_token_id": special_ids(tokenizer).pad},
    drop_last=True,
    summary=lambda settings, train_set: {"positive_pairs": len(train_set)},
    score=score,
    predict=predict,
    parse=parse,
    inputs=inputs,
    dump=jsonl_dump(_shown),
    accepts_any_encoder=True,
)
