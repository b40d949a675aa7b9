"""The T5 encoder-decoder: relative-position buckets, cached decoding, padding invariance, heads."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from plmkit.config import ModelConfig
from plmkit.models.seq2seq import Seq2SeqLM, relative_position_bucket, shift_right

# 8 buckets, max distance 20: short sequences already reach the logarithmic and the last buckets.
RELU_TIED = ModelConfig(
    family="t5",
    vocab_size=120,
    hidden_size=32,
    num_layers=2,
    num_decoder_layers=3,
    num_heads=4,
    head_dim=12,
    intermediate_size=64,
    activation="relu",
    layer_norm_eps=1e-6,
    relative_buckets=8,
    relative_max_distance=20,
    eos_token_id=1,
)
GATED_UNTIED = dataclasses.replace(
    RELU_TIED, activation="gelu_tanh", gated=True, tie_word_embeddings=False
)
CONFIGS = pytest.mark.parametrize(
    "cfg", [RELU_TIED, GATED_UNTIED], ids=["relu-tied", "gated-untied"]
)


def _model(cfg: ModelConfig) -> Seq2SeqLM:
    torch.manual_seed(0)
    return Seq2SeqLM(cfg).eval()


def _padded(lengths: list[int], vocab: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids (pad 0) and their attention mask."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    for row, n in enumerate(lengths):
        ids[row, :n] = torch.randint(2, vocab, (n,), generator=gen)
    return ids, (ids != 0).long()


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize(("buckets", "max_distance"), [(32, 128), (8, 20)])
def test_buckets_match_transformers(bidirectional: bool, buckets: int, max_distance: int) -> None:
    import transformers  # a missing test dependency fails, never skips
    reference = transformers.models.t5.modeling_t5.T5Attention._relative_position_bucket
    relative = torch.arange(-400, 401)[None, :]  # key − query
    ours = relative_position_bucket(
        relative, bidirectional=bidirectional, num_buckets=buckets, max_distance=max_distance
    )
    expected = reference(relative, bidirectional, buckets, max_distance)
    assert torch.equal(ours, expected)
    assert ours.min() == 0 and ours.max() == buckets - 1


def test_shift_right_starts_with_pad_and_drops_ignored_labels() -> None:
    labels = torch.tensor([[5, 6, 7, 1], [8, 1, -100, -100]])
    assert shift_right(labels, 0).tolist() == [[0, 5, 6, 7], [0, 8, 1, 0]]


@CONFIGS
def test_shapes_and_head(cfg: ModelConfig) -> None:
    model = _model(cfg)
    ids, mask = _padded([9, 4], cfg.vocab_size, seed=1)
    dec, _ = _padded([5, 5], cfg.vocab_size, seed=2)
    assert model(ids, mask, dec).shape == (2, 5, cfg.vocab_size)
    assert (model.lm_head is None) == cfg.tie_word_embeddings
    assert len(model.decoder.layers) == 3 and len(model.encoder.layers) == 2


@CONFIGS
@torch.no_grad()
def test_cached_decoding_equals_full_forward(cfg: ModelConfig) -> None:
    """One token at a time (after a 4-token prefix) with KV caches: positions past max_distance too."""
    model = _model(cfg)
    ids, mask = _padded([13, 6, 9], cfg.vocab_size, seed=3)
    dec, _ = _padded([26, 26, 26], cfg.vocab_size, seed=4)
    memory = model.encode(ids, mask)
    full = model.decode(dec, memory, mask)  # (B, T, V)
    caches = model.new_cache()
    steps = [model.decode(dec[:, :4], memory, mask, caches)]
    for t in range(4, dec.shape[1]):
        steps.append(model.decode(dec[:, t : t + 1], memory, mask, caches))
    assert caches[0].self_attn.length == dec.shape[1]
    worst = (torch.cat(steps, dim=1) - full).abs().max().item()
    assert worst < 1e-5, f"cached vs full decoding: max abs diff {worst:.2e}"


@CONFIGS
@torch.no_grad()
def test_padding_does_not_change_real_positions(cfg: ModelConfig) -> None:
    model = _model(cfg)
    ids, mask = _padded([11, 5], cfg.vocab_size, seed=5)
    dec, dec_mask = _padded([7, 3], cfg.vocab_size, seed=6)
    batched = model(ids, mask, dec, dec_mask)
    for row, (n, m) in enumerate([(11, 7), (5, 3)]):
        alone = model(ids[row : row + 1, :n], None, dec[row : row + 1, :m])
        worst = (batched[row, :m] - alone[0]).abs().max().item()
        assert worst < 1e-5, f"row {row}: padded vs unpadded max abs diff {worst:.2e}"


def test_gradients_reach_every_parameter() -> None:
    model = _model(GATED_UNTIED).train()
    ids, mask = _padded([8, 5], GATED_UNTIED.vocab_size, seed=7)
    dec, _ = _padded([6, 6], GATED_UNTIED.vocab_size, seed=8)
    model(ids, mask, dec).logsumexp(-1).mean().backward()
    silent = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert silent == []
