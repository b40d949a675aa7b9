"""Embedding API: a sentence-embedding model directory → unit vectors, pair similarities, top-k search.

`Embedder.load` reads a plmkit `finetune task=matching` run or any Hugging Face BERT-family
directory. How texts become vectors comes from, in order: what plmkit recorded in config.json
(`plmkit_task`: pooling, max length), the sentence-transformers files a hub model ships
(`1_Pooling/config.json`, `sentence_bert_config.json`), else mean pooling over 128 tokens,
the usual choice for an encoder that was never trained to pool. Only the encoder's weights
are read, so a classifier's or tagger's directory embeds too (its head is ignored).

Search is exact (tasks/matching/embeddings.py `top_k`, a chunked matrix product): fine for corpora up to
about a million texts, with no index to build or keep in step with the corpus.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer

from plmkit.checkpoint import load_into, read_checkpoint, resolve_model_dir
from plmkit.config import TableConfig, from_dict
from plmkit.models.heads import SentenceEmbedder
from plmkit.runtime.devices import pick_device
from plmkit.runtime.errors import UserError
from plmkit.tasks.matching.embeddings import embed_texts, top_k
from plmkit.text.tokenizer import load_tokenizer

ARCHITECTURE = "BertModel"
DEFAULT_MAX_LENGTH = 128


def is_embedder(hf_config: dict) -> bool:
    """Whether a config.json describes a sentence embedder: a matching run, or a bare `BertModel`
    (as sentence-transformers models are) that records no other plmkit task."""
    task = (hf_config.get("plmkit_task") or {}).get("task")
    return task == "matching" or (task is None and hf_config.get("architectures") == [ARCHITECTURE])


class Embedder:
    """A loaded sentence embedder with its tokenizer and input settings."""

    def __init__(
        self,
        model: SentenceEmbedder,
        tokenizer: Tokenizer,
        max_length: int,
        table: TableConfig,
        device: torch.device,
    ) -> None:
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.table = table  # the columns it was fine-tuned on (plmkit runs), for `evaluate`
        self.device = device

    @property
    def pooling(self) -> str:
        """cls | mean: how token states become one vector."""
        return self.model.pooling

    @property
    def dimension(self) -> int:
        """The width H of every embedding."""
        return self.model.encoder.pooler.in_features

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> Embedder:
        """Load a matching run, or any BERT-family directory (a run directory holding final/)."""
        model_dir = resolve_model_dir(path)
        checkpoint = read_checkpoint(model_dir)
        if checkpoint.cfg.family != "bert":
            raise UserError(
                f"{model_dir}: family '{checkpoint.cfg.family}'; embeddings need an "
                "encoder (family bert)"
            )
        info = checkpoint.hf_config.get("plmkit_task") or {}
        if info.get("task") != "matching":
            info = {}  # another task's settings say nothing about embedding
        pooling, max_length = _hub_settings(model_dir)
        pooling = info.get("pooling") or pooling
        max_length = min(info.get("max_length") or max_length, checkpoint.cfg.max_position)
        model = SentenceEmbedder(checkpoint.cfg, pooling=pooling)
        load_into(model, checkpoint, architecture=ARCHITECTURE)
        table = from_dict(TableConfig, info.get("table"), "plmkit_task.table")
        return cls(model, load_tokenizer(model_dir), max_length, table, pick_device(device))

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Unit-length embeddings (N, H) of `texts`, in input order."""
        texts = _text_list(texts, "texts")
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return embed_texts(
            self.model,
            self.tokenizer,
            texts,
            max_length=self.max_length,
            batch_size=batch_size,
            device=self.device,
        )

    def similarity(self, texts_a: Sequence[str], texts_b: Sequence[str]) -> np.ndarray:
        """Cosine similarity (N,) of texts_a[i] and texts_b[i]."""
        texts_a, texts_b = _text_list(texts_a, "texts_a"), _text_list(texts_b, "texts_b")
        if len(texts_a) != len(texts_b):
            raise UserError(f"similarity: {len(texts_a)} texts_a but {len(texts_b)} texts_b")
        vectors = self.embed(texts_a + texts_b)  # (2N, H): one pass, one padding plan
        return np.sum(vectors[: len(texts_a)] * vectors[len(texts_a) :], axis=1)

    def search(
        self, queries: Sequence[str], corpus: Sequence[str], k: int = 10
    ) -> list[list[tuple[int, float]]]:
        """For each query, the k most similar corpus texts as (corpus index, cosine), best first."""
        if k < 1:
            raise UserError(f"search: k must be ≥ 1, got {k}")
        queries, corpus = _text_list(queries, "queries"), _text_list(corpus, "corpus")
        if not queries or not corpus:
            return [[] for _ in queries]
        scores, indices = top_k(self.embed(queries), self.embed(corpus), k)  # (Q, k) each
        return [
            [(int(i), float(s)) for i, s in zip(row_i, row_s, strict=True)]
            for row_i, row_s in zip(indices, scores, strict=True)
        ]


def _hub_settings(model_dir: Path) -> tuple[str, int]:
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


def _text_list(texts: Sequence[str], name: str) -> list[str]:
    """`texts` as a list; one bare string is a mistake that would embed its characters."""
    if isinstance(texts, str):
        raise UserError(f"{name}: expected a list of texts, got one string")
    return list(texts)
