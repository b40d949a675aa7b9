"""Semantic matching: sentence embeddings, contrastive fine-tuning on pairs, similarity and retrieval.

Where it sits: a stage reads sentence pairs with tasks/tables.py `read_table` (AFQMC/LCQMC:
label 1 = same meaning; STS-B: a 0-5 score), keeps the positives with `positive_pairs`,
tokenizes them once with `encode_text_pairs`, and hands tasks/sampling.py `SampledBatches` over
`collate_text_pairs`, and `contrastive_loss(...)`, to the one trainer. `embed_texts` turns texts
into unit vectors; `cosine_similarity` scores pairs (STS-B: `sts_metrics`, Spearman as GLUE
reports it) and `top_k` retrieves from a corpus (`recall_at_k`); `score_pairs` is the one scorer
of a labelled pair file that fine-tuning (dev) and `plmkit evaluate` share. An embedder is any
`nn.Module` called as `model(input_ids, attention_mask, token_type_ids)` that returns (B, H),
such as models/heads.py `SentenceEmbedder`.

Key choices and their cost:
- Contrastive learning with in-batch negatives (the InfoNCE / "multiple negatives ranking"
  loss): for each pair (a, b) in a batch, every other b is a negative. It needs positive pairs
  only, but its negatives are random, so larger batches help, and a batch holding the same
  sentence twice would make that sentence its own negative: such duplicates are masked out
  of the loss (found by exact text at encoding time).
- Both sides of every pair go through the encoder as one batch of 2B rows (one forward, the
  same weights), padded to the longest of the two sides.
- Embeddings are L2-normalised, so cosine similarity is a dot product and `top_k` is a chunked
  matrix product: exact, but linear in the corpus (no approximate index; fine up to ~10^6).
- `score_pairs` tells graded from 0/1 labels by the values in the file, with no setting to
  forget; the cost is that a graded file whose every score happens to be 0 or 1 is scored as
  a 0/1 file (AUC and recall instead of correlations).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch import nn

from plmkit.runtime.errors import UserError
from plmkit.tasks.metrics import regression_metrics
from plmkit.tasks.sampling import INPUT_KEYS, pad_inputs, predict_batches
from plmkit.tasks.tables import Example
from plmkit.text.tokenizer import configured

MIN_MAX_LENGTH = 3  # [CLS] token [SEP]


def positive_pairs(
    examples: Sequence[Example], min_score: float | None = None
) -> list[tuple[str, str]]:
    """(text, text_pair) of the positive rows: label "1", or score ≥ `min_score` when given."""
    pairs = []
    for ex in examples:
        if ex.text_pair is None:
            raise UserError(
                f"{ex.source}:{ex.line}: matching needs a sentence pair (set text_pair_column)"
            )
        if ex.label is None:
            raise UserError(f"{ex.source}:{ex.line}: no label")
        if min_score is None:
            positive = str(ex.label).strip() == "1"
        else:
            positive = float(ex.label) >= min_score
        if positive:
            pairs.append((ex.text, ex.text_pair))
    if not pairs:
        source = examples[0].source if examples else "the training file"
        raise UserError(f"{source}: no positive pairs to train on")
    return pairs


# ----------------------------------------------------------------------------- tokenizing


def encode_texts(tokenizer: Tokenizer, texts: Sequence[str], max_length: int) -> list[np.ndarray]:
    """[CLS] text [SEP] ids of every text, truncated to max_length."""
    if max_length < MIN_MAX_LENGTH:
        raise UserError(f"max_length={max_length}: use at least {MIN_MAX_LENGTH}")
    if tokenizer.post_processor is None:
        raise UserError("the tokenizer has no post-processor to add [CLS] and [SEP]")
    work = configured(tokenizer, max_length)
    return [np.asarray(enc.ids, dtype=np.int64) for enc in work.encode_batch(list(texts))]


def _pad_id(tokenizer: Tokenizer) -> int:
    pad = tokenizer.token_to_id("[PAD]")
    return 0 if pad is None else pad


@dataclass
class TextPairs:
    """Tokenized positive pairs, unpadded, with ids of identical texts (for masking duplicates)."""

    a: list[np.ndarray]
    b: list[np.ndarray]
    a_group: np.ndarray  # (N,) equal numbers = identical a texts
    b_group: np.ndarray  # (N,)
    pad_id: int

    def __len__(self) -> int:
        return len(self.a)


def encode_text_pairs(
    tokenizer: Tokenizer, pairs: Sequence[tuple[str, str]], max_length: int
) -> TextPairs:
    """Tokenize both sides of every pair (each its own [CLS] … [SEP] sequence)."""

    def groups(texts: list[str]) -> np.ndarray:
        ids: dict[str, int] = {}
        return np.asarray([ids.setdefault(t, len(ids)) for t in texts], dtype=np.int64)

    a_texts, b_texts = [a for a, _ in pairs], [b for _, b in pairs]
    return TextPairs(
        encode_texts(tokenizer, a_texts, max_length),
        encode_texts(tokenizer, b_texts, max_length),
        groups(a_texts),
        groups(b_texts),
        _pad_id(tokenizer),
    )


def collate_text_pairs(pairs: TextPairs, indices: Sequence[int]) -> dict[str, torch.Tensor]:
    """B pairs as 2B rows (all a's, then all b's), plus the duplicate ids of both sides."""
    batch = pad_inputs([pairs.a[i] for i in indices] + [pairs.b[i] for i in indices], pairs.pad_id)
    batch["a_group"] = torch.from_numpy(pairs.a_group[indices])
    batch["b_group"] = torch.from_numpy(pairs.b_group[indices])
    return batch


# ----------------------------------------------------------------------------- training


def contrastive_loss(
    temperature: float = 0.05, symmetric: bool = True
) -> Callable[[nn.Module, dict[str, torch.Tensor]], tuple[torch.Tensor, dict[str, float]]]:
    """The trainer's loss: cross-entropy of each a against all b's of the batch (and, when
    `symmetric`, each b against all a's), cosine similarity / `temperature` as logits."""
    if temperature <= 0:
        raise UserError(f"temperature={temperature}: must be > 0")

    def loss_fn(
        model: nn.Module, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        vectors = model(*(batch[key] for key in INPUT_KEYS))  # (2B, H): a's, then b's
        a, b = F.normalize(vectors.float(), dim=-1).chunk(2)  # (B, H) each
        scores = a @ b.T / temperature  # (B, B): row i = a_i against every b
        target = torch.arange(len(a), device=scores.device)
        eye = torch.eye(len(a), dtype=torch.bool, device=scores.device)
        same_b = (batch["b_group"][:, None] == batch["b_group"][None, :]) & ~eye  # duplicate b's
        same_a = (batch["a_group"][:, None] == batch["a_group"][None, :]) & ~eye
        forward = scores.masked_fill(same_b, float("-inf"))
        loss = F.cross_entropy(forward, target)
        if symmetric:
            backward = F.cross_entropy(scores.T.masked_fill(same_a, float("-inf")), target)
            loss = (loss + backward) / 2
        return loss, {"acc": (forward.argmax(dim=1) == target).float().mean().item()}

    return loss_fn


# ----------------------------------------------------------------------------- using embeddings


def embed_texts(
    model: nn.Module,
    tokenizer: Tokenizer,
    texts: Sequence[str],
    *,
    max_length: int = 128,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Unit-length embeddings (N, H) of `texts`, in input order; eval mode, no grad."""
    rows, pad_id = encode_texts(tokenizer, texts, max_length), _pad_id(tokenizer)
    out = np.zeros((0, 0), dtype=np.float32)

    def collate(indices: np.ndarray) -> dict[str, torch.Tensor]:
        return pad_inputs([rows[i] for i in indices], pad_id)

    lengths = [len(r) for r in rows]
    for indices, vectors in predict_batches(model, lengths, batch_size, collate, device):
        if not out.size:
            out = np.empty((len(rows), vectors.shape[-1]), dtype=np.float32)
        out[indices] = F.normalize(vectors.float(), dim=-1).cpu().numpy()  # (B, H)
    return out


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of a (N, H) and b (N, H) → (N,)."""
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return np.sum(a * b, axis=1)


def top_k(
    queries: np.ndarray, corpus: np.ndarray, k: int, chunk: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """The k corpus rows most similar to each query (unit vectors): scores and indices (Q, k),
    best first; ties go to the lower index."""
    k = min(k, len(corpus))
    scores = np.empty((len(queries), k), dtype=np.float32)
    indices = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), chunk):
        sims = queries[start : start + chunk] @ corpus.T  # (q, N)
        order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        indices[start : start + chunk] = order
        scores[start : start + chunk] = np.take_along_axis(sims, order, axis=1)
    return scores, indices


def sts_metrics(predicted: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """Spearman and Pearson correlation of predicted similarities with gold scores (STS-B)."""
    out = regression_metrics(np.asarray(predicted), np.asarray(gold))
    return {"spearman": out["spearman"], "pearson": out["pearson"]}


def retrieval_set(pairs: Sequence[tuple[str, str]]) -> tuple[list[str], list[str], list[set[int]]]:
    """Queries (distinct a's), a corpus (distinct b's) and, per query, the corpus ids it pairs with."""
    queries: dict[str, set[int]] = {}
    corpus: dict[str, int] = {}
    for a, b in pairs:
        queries.setdefault(a, set()).add(corpus.setdefault(b, len(corpus)))
    return list(queries), list(corpus), list(queries.values())


def recall_at_k(
    ranked: np.ndarray, relevant: Sequence[set[int]], ks: Sequence[int] = (1, 5, 10)
) -> dict[str, float]:
    """Mean over queries of the share of their relevant items in the top k, as recall@k."""
    if len(ranked) != len(relevant) or not relevant:
        raise ValueError(f"{len(ranked)} rankings for {len(relevant)} queries")
    out = {}
    for k in ks:
        hits = [
            len(rel & set(row[:k].tolist())) / len(rel)
            for row, rel in zip(ranked, relevant, strict=True)
        ]
        out[f"recall@{k}"] = float(np.mean(hits))
    return out


# ----------------------------------------------------------------------------- scoring labelled pairs


def gold_scores(examples: Sequence[Example]) -> np.ndarray:
    """Each pair's label as a number (0/1, or a graded score such as STS-B's 0-5), checked."""
    out = np.empty(len(examples), dtype=np.float64)
    for i, ex in enumerate(examples):
        if ex.text_pair is None:
            raise UserError(
                f"{ex.source}:{ex.line}: matching needs a sentence pair (set table.text_pair_column)"
            )
        try:
            out[i] = float(ex.label)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            out[i] = math.nan
        if not math.isfinite(out[i]):
            raise UserError(
                f"{ex.source}:{ex.line}: label '{ex.label}' is not a number "
                "(matching labels are 0/1 or a similarity score)"
            )
    return out


def score_pairs(
    embed: Callable[[list[str]], np.ndarray],
    examples: Sequence[Example],
    ks: Sequence[int] = (1, 10),
) -> dict[str, float]:
    """Scores of an embedder's cosine similarity on labelled pairs. Graded labels (STS-B):
    Spearman and Pearson. 0/1 labels (AFQMC, LCQMC): ROC-AUC (NaN with one class only) and
    recall@k of each positive's partner among all the file's distinct second sentences."""
    gold = gold_scores(examples)
    texts = list(dict.fromkeys([ex.text for ex in examples] + [ex.text_pair for ex in examples]))
    vectors = embed(texts)  # (N, H) unit rows, each distinct text embedded once
    row = {text: i for i, text in enumerate(texts)}
    a = vectors[[row[ex.text] for ex in examples]]
    b = vectors[[row[str(ex.text_pair)] for ex in examples]]
    cosine = cosine_similarity(a, b)
    if not set(np.unique(gold).tolist()) <= {0.0, 1.0}:
        return sts_metrics(cosine, gold)
    from sklearn.metrics import roc_auc_score

    both = len(np.unique(gold)) == 2
    metrics = {"auc": float(roc_auc_score(gold, cosine)) if both else math.nan}
    positives = [(ex.text, str(ex.text_pair)) for ex, g in zip(examples, gold) if g == 1.0]
    if not positives:
        return metrics | {f"recall@{k}": math.nan for k in ks}
    queries, corpus, relevant = retrieval_set(positives)
    seen = set(corpus)
    corpus += [t for t in dict.fromkeys(str(ex.text_pair) for ex in examples) if t not in seen]
    query_vectors = vectors[[row[q] for q in queries]]  # (Q, H)
    corpus_vectors = vectors[[row[c] for c in corpus]]  # (C, H)
    _, ranked = top_k(query_vectors, corpus_vectors, max(ks))
    return metrics | recall_at_k(ranked, relevant, ks)
