"""Semantic matching: positive pairs, in-batch contrastive loss, embeddings, retrieval, scores.

Expected values come from the data's published counts (shared/data/README.md), from the loss
written out by hand in NumPy, from brute-force sorting, and from SciPy; never from our own output.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from plmkit.config import ModelConfig, TableConfig, TokenizerStageConfig
from plmkit.models.heads import SentenceEmbedder
from plmkit.runtime.errors import UserError
from plmkit.tasks.matching.embeddings import (
    collate_text_pairs,
    contrastive_loss,
    cosine_similarity,
    embed_texts,
    encode_text_pairs,
    positive_pairs,
    recall_at_k,
    retrieval_set,
    sts_metrics,
    top_k,
)
from plmkit.tasks.sampling import SampledBatches
from plmkit.tasks.tables import Example, read_table
from plmkit.text.tokenizer_training import train_tokenizer

AFQMC = TableConfig(text_column="0", text_pair_column="1", label_column="2", header=False)
PAIRS = [
    ("how do i open an account", "steps to open an account"),
    ("what is the interest rate", "how much interest do i pay"),
    ("can i repay early", "is early repayment allowed"),
    ("where is my card", "my card has not arrived"),
    ("how to change my phone number", "update the phone number on file"),
    ("why was my loan refused", "reasons a loan is declined"),
]


class TableEmbedder(nn.Module):
    """Row i's embedding is table[input_ids[i, 1]]: the first real token picks a fixed vector."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = nn.Parameter(table)

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.table[input_ids[:, 1]]


def _loss_by_hand(
    a: np.ndarray, b: np.ndarray, temperature: float, masked: set[tuple[int, int]]
) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    total = 0.0
    for scores, mask in ((a @ b.T / temperature, masked), (b @ a.T / temperature, set())):
        for i, row in enumerate(scores):
            kept = [s for j, s in enumerate(row) if (i, j) not in mask]
            total += -(row[i] - np.log(np.sum(np.exp(kept))))
    return total / (2 * len(a))


def test_contrastive_loss_equals_infonce_by_hand_and_masks_duplicates() -> None:
    rng = np.random.default_rng(0)
    table = rng.normal(size=(8, 5)).astype(np.float32)
    a_rows, b_rows = [0, 1, 2], [3, 4, 3]  # b0 and b2 are the same sentence
    ids = torch.tensor([[2, r, 3] for r in a_rows + b_rows])
    batch = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "token_type_ids": torch.zeros_like(ids),
        "a_group": torch.tensor([0, 1, 2]),
        "b_group": torch.tensor([0, 1, 0]),
    }
    loss, _ = contrastive_loss(temperature=0.1)(TableEmbedder(torch.from_numpy(table)), batch)
    # The duplicate b is not a negative for either of the two a's it belongs to.
    expected = _loss_by_hand(table[a_rows], table[b_rows], 0.1, masked={(0, 2), (2, 0)})
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_afqmc_positive_pairs_match_published_counts(shared_data) -> None:
    rows = read_table(shared_data / "afqmc" / "dev.txt", AFQMC)
    assert len(positive_pairs(rows)) == 1338
    stsb = [Example("a", "b", 4.5, 2), Example("c", "d", 1.0, 3)]
    assert positive_pairs(stsb, min_score=4.0) == [("a", "b")]
    with pytest.raises(UserError, match="no positive pairs"):
        positive_pairs(stsb, min_score=5.0)


def test_batches_stack_both_sides_and_mark_duplicates() -> None:
    tok = train_tokenizer(
        [a + " " + b for a, b in PAIRS] * 3, TokenizerStageConfig(vocab_size=200, min_frequency=1)
    )
    pairs = encode_text_pairs(tok, PAIRS + [(PAIRS[0][0], "a new answer")], max_length=16)
    assert pairs.a_group.tolist() == [0, 1, 2, 3, 4, 5, 0]
    batch = collate_text_pairs(pairs, np.arange(7))
    assert batch["input_ids"].shape[0] == 14
    assert batch["input_ids"][0].tolist()[: len(pairs.a[0])] == pairs.a[0].tolist()
    assert batch["input_ids"][7].tolist()[: len(pairs.b[0])] == pairs.b[0].tolist()


def test_top_k_and_recall_match_brute_force() -> None:
    rng = np.random.default_rng(2)
    queries, corpus = rng.normal(size=(30, 8)), rng.normal(size=(50, 8))
    scores, indices = top_k(queries, corpus, k=5, chunk=7)
    brute = np.argsort(-(queries @ corpus.T), axis=1)[:, :5]
    assert (indices == brute).all()
    assert np.allclose(scores, np.take_along_axis(queries @ corpus.T, brute, axis=1), atol=1e-5)
    ranked = np.array([[3, 1, 2], [0, 2, 1]])
    assert recall_at_k(ranked, [{1}, {1, 2}], ks=(1, 2, 3)) == {
        "recall@1": 0.0,
        "recall@2": pytest.approx(0.75),
        "recall@3": 1.0,
    }


def test_retrieval_set_and_sts_scores() -> None:
    queries, corpus, relevant = retrieval_set(
        [("q1", "d1"), ("q2", "d2"), ("q1", "d3"), ("q3", "d1")]
    )
    assert (queries, corpus, relevant) == (
        ["q1", "q2", "q3"],
        ["d1", "d2", "d3"],
        [{0, 2}, {1}, {0}],
    )
    rng = np.random.default_rng(3)
    gold = rng.uniform(0, 5, size=40)
    a, b = rng.normal(size=(40, 6)), rng.normal(size=(40, 6))
    cos = cosine_similarity(a, b)
    assert np.allclose(cos, [x @ y / np.linalg.norm(x) / np.linalg.norm(y) for x, y in zip(a, b)])
    assert sts_metrics(cos, gold)["spearman"] == pytest.approx(spearmanr(cos, gold)[0])


def test_tiny_embedder_learns_to_retrieve_its_pairs(single_thread) -> None:
    tok = train_tokenizer(
        [a + " " + b for a, b in PAIRS] * 3, TokenizerStageConfig(vocab_size=200, min_frequency=1)
    )
    cfg = ModelConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=32,
        num_layers=1,
        num_heads=2,
        intermediate_size=64,
        max_position=32,
        dropout=0.0,
        attention_dropout=0.0,
    )
    torch.manual_seed(0)
    model = SentenceEmbedder(cfg, pooling="mean")
    pairs = encode_text_pairs(tok, PAIRS, max_length=16)
    batches = SampledBatches(pairs, 6, collate_text_pairs, seed=0)
    loss_fn = contrastive_loss(temperature=0.1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss, _ = loss_fn(model, batches.next_batch(0.0))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0], losses
    queries = embed_texts(model, tok, [a for a, _ in PAIRS], batch_size=4)
    corpus = embed_texts(model, tok, [b for _, b in PAIRS], batch_size=4)
    assert np.allclose(np.linalg.norm(queries, axis=1), 1.0, atol=1e-5)
    _, ranked = top_k(queries, corpus, k=1)
    assert recall_at_k(ranked, [{i} for i in range(len(PAIRS))], ks=(1,))["recall@1"] == 1.0
    one_by_one = np.concatenate([embed_texts(model, tok, [a]) for a, _ in PAIRS])
    assert np.allclose(one_by_one, queries, atol=1e-5)  # order and padding do not matter
