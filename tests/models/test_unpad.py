"""The unpadded encoder path (models/unpad.py) computes what the padded path computes.

Same weights, same batch (rows of very different lengths), fp32: the pretraining loss and
every parameter's gradient agree within 1e-5 relative, for MLM + NSP and for a classifier.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from plmkit.config import ModelConfig
from plmkit.models.encoder import Encoder, PretrainingModel
from plmkit.models.heads import SequenceClassifier
from plmkit.models.unpad import repad, unpad, unpadding

CFG = ModelConfig(
    vocab_size=300,
    hidden_size=32,
    num_layers=2,
    num_heads=4,
    intermediate_size=64,
    max_position=64,
    dropout=0.0,
    attention_dropout=0.0,
)
REL = 1e-5


def _batch(lengths: list[int], seq_len: int = 24, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    B = len(lengths)
    ids = torch.randint(5, CFG.vocab_size, (B, seq_len), generator=gen)
    mask = (torch.arange(seq_len)[None] < torch.tensor(lengths)[:, None]).long()  # (B, T)
    types = (torch.arange(seq_len)[None] >= (torch.tensor(lengths)[:, None] // 2)).long() * mask
    return {"input_ids": ids * mask, "attention_mask": mask, "token_type_ids": types}


def _pair(model_cls: type, **kwargs: object) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The same weights built twice: unpadded path and padded path."""
    torch.manual_seed(0)
    fast = model_cls(dataclasses.replace(CFG, unpad=True), **kwargs)
    slow = model_cls(dataclasses.replace(CFG, unpad=False), **kwargs)
    slow.load_state_dict(fast.state_dict())
    return fast, slow


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def _check_grads(fast: torch.nn.Module, slow: torch.nn.Module) -> float:
    worst = 0.0
    slow_params = dict(slow.named_parameters())
    for name, p in fast.named_parameters():
        q = slow_params[name]
        assert (p.grad is None) == (q.grad is None), name
        if p.grad is not None and q.grad.abs().max() > 0:
            rel = _rel(p.grad, q.grad)
            assert rel < REL, f"{name}: gradient max rel diff {rel:.2e}"
            worst = max(worst, rel)
    return worst


def test_unpad_then_repad_is_identity_on_tokens_and_zero_on_padding() -> None:
    batch = _batch([5, 24, 1, 13])
    x = torch.randn(4, 24, 8)
    u = unpadding(batch["attention_mask"])
    flat = unpad(x, u)
    assert flat.shape == (5 + 24 + 1 + 13, 8)
    assert u.cu_seqlens.tolist() == [0, 5, 29, 30, 43] and u.max_seqlen == 24
    back = repad(flat, u)
    mask = batch["attention_mask"].bool()
    assert torch.equal(back[mask], x[mask]) and not back[~mask].any()


def test_pretraining_loss_and_gradients_equal_padded_path() -> None:
    batch = _batch([24, 7, 16, 3, 20, 11])
    labels = torch.where(
        torch.rand(6, 24, generator=torch.Generator().manual_seed(1)) < 0.3,
        batch["input_ids"],
        -100,
    ).masked_fill(batch["attention_mask"] == 0, -100)
    positions = (labels.reshape(-1) != -100).nonzero().squeeze(1)
    nsp = torch.tensor([0, 1, 1, 0, 1, 0])
    fast, slow = _pair(PretrainingModel)
    losses = []
    for model in (fast, slow):
        out = model(**batch, mlm_positions=positions)
        loss = F.cross_entropy(out.mlm_logits, labels.reshape(-1)[positions]) + F.cross_entropy(
            out.nsp_logits, nsp
        )
        loss.backward()
        losses.append(loss)
    assert _rel(losses[0], losses[1]) < REL
    worst = _check_grads(fast, slow)
    print(f"loss {losses[0].item():.6f} vs {losses[1].item():.6f}; worst grad rel diff {worst:.1e}")


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_classifier_loss_and_gradients_equal_padded_path(pooling: str) -> None:
    batch = _batch([9, 24, 2, 15], seed=3)
    fast, slow = _pair(SequenceClassifier, num_labels=3, pooling=pooling)
    losses = []
    for model in (fast, slow):
        loss = F.cross_entropy(model(**batch), torch.tensor([0, 2, 1, 2]))
        loss.backward()
        losses.append(loss)
    assert _rel(losses[0], losses[1]) < REL
    _check_grads(fast, slow)


def test_hidden_states_equal_at_real_tokens_and_zero_at_padding() -> None:
    batch = _batch([24, 6, 13])
    fast, slow = _pair(Encoder)
    a, b = fast(**batch), slow(**batch)
    mask = batch["attention_mask"].bool()
    assert (a.hidden[mask] - b.hidden[mask]).abs().max() < 1e-5
    assert (a.pooled - b.pooled).abs().max() < 1e-5
    assert not a.hidden[~mask].any()


def test_full_rows_and_no_mask_take_the_same_result() -> None:
    batch = _batch([24, 24])
    fast, slow = _pair(Encoder)
    no_mask = slow(batch["input_ids"], None, batch["token_type_ids"]).hidden
    assert torch.allclose(fast(**batch).hidden, no_mask, atol=1e-5)
