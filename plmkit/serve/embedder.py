"""Embedding API: a sentence-embedding model directory → unit vectors, pair similarities, top-k search.

`Embedder.load` (= `plmkit.load_embedder`) reads a plmkit `finetune task=matching` run or any
Hugging Face BERT-family directory through the task registry; tasks/matching/task.py says how
its texts become vectors (recorded pooling, a hub model's sentence-transformers files, else
mean pooling over 128 tokens). Only the encoder's weights are read, so a classifier's or
tagger's directory embeds too (its head is ignored).

Search is exact (tasks/matching/embeddings.py `top_k`, a chunked matrix product): fine for corpora up to
about a million texts, with no index to build or keep in step with the corpus.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from plmkit.runtime.errors import UserError
from plmkit.tasks.contract import TaskModel
from plmkit.tasks.matching.embeddings import top_k
from plmkit.tasks.matching.task import MATCHING, embed
from plmkit.tasks.registry import load_task_model


class Embedder:
    """A loaded sentence embedder with its tokenizer and input settings."""

    def __init__(self, task_model: TaskModel) -> None:
        self.task_model = task_model
        self.pooling: str = task_model.settings.pooling  # cls | mean: token states → one vector
        self.dimension: int = task_model.config.hidden_size  # the width H of every embedding

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> Embedder:
        """Load a matching run, or any BERT-family directory (a run directory holding final/)."""
        return cls(load_task_model(path, device, family=MATCHING))

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Unit-length embeddings (N, H) of `texts`, in input order."""
        texts = _text_list(texts, "texts")
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return embed(self.task_model, texts, batch_size)

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


def _text_list(texts: Sequence[str], name: str) -> list[str]:
    """`texts` as a list; one bare string is a mistake that would embed its characters."""
    if isinstance(texts, str):
        raise UserError(f"{name}: expected a list of texts, got one string")
    return list(texts)
