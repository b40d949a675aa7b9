"""The BERT encoder and its heads: shapes, padding invariance, the MLM gather, tied weights, gradients."""

from __future__ import annotations

import pytest
import torch

from plmkit.config import ModelConfig
from plmkit.models.encoder import Encoder, PretrainingModel
from plmkit.models.heads import SequenceClassifier, encoder_from
from plmkit.models.layers import Attention

CFG = ModelConfig(
    vocab_size=97, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64, max_position=64
)


def _batch(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ids, attention mask and segment ids (second half of each sequence is segment 1)."""
    gen = torch.Generator().manual_seed(seed)
    T = max(lengths)
    ids = torch.zeros(len(lengths), T, dtype=torch.long)
    mask = torch.zeros_like(ids)
    types = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, :n] = torch.randint(1, CFG.vocab_size, (n,), generator=gen)
        mask[row, :n] = 1
        types[row, n // 2 : n] = 1
    return ids, mask, types


def _model(cls=PretrainingModel, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    return cls(CFG, **kwargs).eval()


def test_shapes() -> None:
    ids, mask, types = _batch([7, 4, 2])
    hidden, pooled = _model(Encoder)(ids, mask, types)
    assert hidden.shape == (3, 7, 32) and pooled.shape == (3, 32)
    out = _model()(ids, mask, types)
    assert out.mlm_logits.shape == (3, 7, 97) and out.nsp_logits.shape == (3, 2)
    positions = torch.tensor([0, 5, 9, 20])
    assert _model()(ids, mask, types, mlm_positions=positions).mlm_logits.shape == (4, 97)
    for pooling in ("cls", "mean"):
        assert _model(SequenceClassifier, num_labels=3, pooling=pooling)(ids, mask).shape == (3, 3)
    assert _model(SequenceClassifier, num_labels=1)(ids).shape == (3, 1)


def test_padding_invariance() -> None:
    """A padded sequence's real positions match the same sequence run alone (even with junk in the padding)."""
    ids, mask, types = _batch([6, 11, 3])
    ids[0, 6:] = torch.arange(5) + 40  # padding ids must not matter, only the mask
    model = _model(Encoder)
    hidden, pooled = model(ids, mask, types)
    for row, n in enumerate([6, 11, 3]):
        alone_hidden, alone_pooled = model(ids[row : row + 1, :n], None, types[row : row + 1, :n])
        diff = (hidden[row, :n] - alone_hidden[0]).abs().max().item()
        assert diff < 1e-5, f"row {row}: hidden max abs diff {diff:.2e}"
        diff = (pooled[row] - alone_pooled[0]).abs().max().item()
        assert diff < 1e-5, f"row {row}: pooled max abs diff {diff:.2e}"
    classifier = _model(SequenceClassifier, num_labels=2, pooling="mean")
    logits = classifier(ids, mask, types)
    alone = classifier(ids[:1, :6], None, types[:1, :6])
    diff = (logits[0] - alone[0]).abs().max().item()
    assert diff < 1e-5, f"mean pooling: max abs diff {diff:.2e}"


def test_mlm_positions_gather_equals_full_logits() -> None:
    ids, mask, types = _batch([8, 5, 8])
    model = _model()
    full = model(ids, mask, types).mlm_logits  # (B, T, V)
    positions = mask.flatten().nonzero().squeeze(1)[::3]  # (N,) flat indices into B*T
    out = model(ids, mask, types, mlm_positions=positions)
    diff = (out.mlm_logits - full.reshape(-1, CFG.vocab_size)[positions]).abs().max().item()
    assert diff < 1e-5, f"gathered vs full MLM logits: max abs diff {diff:.2e}"


def test_mlm_decoder_is_tied_to_word_embeddings() -> None:
    model = _model()
    word = model.encoder.embeddings.word.weight
    assert model.mlm.weight is word
    assert model.mlm.weight.data_ptr() == word.data_ptr()
    names = [name for name, _ in model.named_parameters()]
    assert "mlm.weight" not in names, "the tied matrix must reach the optimizer once"
    with torch.no_grad():
        word[5].add_(1.0)
    assert torch.equal(model.mlm.weight[5], word[5])


def test_gradient_reaches_every_parameter() -> None:
    ids, mask, types = _batch([7, 4])
    model = _model().train()
    out = model(ids, mask, types, mlm_positions=torch.tensor([1, 3, 8]))
    loss = torch.nn.functional.cross_entropy(out.mlm_logits, torch.tensor([5, 6, 7]))
    loss = loss + torch.nn.functional.cross_entropy(out.nsp_logits, torch.tensor([0, 1]))
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, f"{name}: zero gradient"


def test_bert_init() -> None:
    model = _model()
    word = model.encoder.embeddings.word.weight
    assert word[CFG.pad_token_id].abs().sum() == 0, "padding row must start at zero"
    std = model.encoder.layers[0].attn.qkv.weight.std().item()
    assert abs(std - CFG.initializer_range) < 0.004, f"qkv weight std {std:.4f}"
    assert model.encoder.layers[0].ffn.up.bias.abs().sum() == 0
    assert model.mlm.bias.abs().sum() == 0 and model.nsp.bias.abs().sum() == 0
    norm = model.encoder.layers[1].ffn_norm
    assert torch.all(norm.weight == 1) and torch.all(norm.bias == 0)


def test_dropout_only_in_training() -> None:
    ids, mask, types = _batch([6, 6])
    model = _model(Encoder)
    first, second = model(ids, mask, types).hidden, model(ids, mask, types).hidden
    assert torch.equal(first, second), "eval mode must be deterministic"
    model.train()
    assert not torch.equal(model(ids, mask, types).hidden, model(ids, mask, types).hidden)


def test_causal_attention_ignores_the_future() -> None:
    torch.manual_seed(0)
    attn = Attention(hidden_size=16, num_heads=2, dropout=0.0, causal=True).eval()
    x = torch.randn(2, 6, 16)
    changed = x.clone()
    changed[:, 4:] += 1.0
    mask = torch.ones(2, 1, 1, 6, dtype=torch.bool)
    for m in (None, mask):
        diff = (attn(x, m)[:, :4] - attn(changed, m)[:, :4]).abs().max().item()
        assert diff < 1e-6, f"past positions moved by {diff:.2e} when the future changed"


def test_encoder_from() -> None:
    classifier = _model(SequenceClassifier, num_labels=2)
    assert encoder_from(classifier) is classifier.encoder
    assert encoder_from(classifier.encoder) is classifier.encoder
    with pytest.raises(TypeError):
        encoder_from(torch.nn.Linear(2, 2))


def test_reinit_top_draws_only_the_top_blocks_and_the_pooler_afresh() -> None:
    cfg = ModelConfig(vocab_size=40, hidden_size=16, num_layers=3, num_heads=2, intermediate_size=32)
    torch.manual_seed(0)
    encoder = Encoder(cfg)
    with torch.no_grad():  # stand-in for pretrained weights: far from any fresh init
        for p in encoder.parameters():
            p.fill_(0.5)
    encoder.reinit_top(2, cfg.initializer_range)
    assert all((p == 0.5).all() for p in encoder.layers[0].parameters())
    assert all((p == 0.5).all() for p in encoder.embeddings.parameters())
    for block in (encoder.layers[1], encoder.layers[2], encoder.pooler):
        assert not any((p == 0.5).all() for p in block.parameters())
    assert encoder.pooler.weight.std() < 0.1  # normal(0, 0.02) again
    with pytest.raises(ValueError, match="4 of 3"):
        encoder.reinit_top(4, cfg.initializer_range)
