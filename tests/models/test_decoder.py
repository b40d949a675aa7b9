"""decoder.py: CausalLM agrees with Transformers' GPT-2 on logits and loss, padded either side.

The reference is `transformers.GPT2LMHeadModel` holding the same weights (eager attention);
each assertion states the max abs difference it saw.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import transformers  # noqa: F401  (a missing test dependency fails, never skips)

from plmkit.config import ModelConfig
from plmkit.models.decoder import CausalLM
from plmkit.objectives import causal_lm_loss

from .tiny_gpt import VOCAB, hf_gpt2, left_padded, ours_from

TOL = 1e-4


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, CausalLM]:
    hf = hf_gpt2()
    return hf, ours_from(hf, tmp_path_factory.mktemp("gpt2"))


def _worst(ours: torch.Tensor, theirs: torch.Tensor, mask: torch.Tensor) -> float:
    assert ours.shape == theirs.shape
    return (ours - theirs).abs()[mask.bool()].max().item()


@torch.no_grad()
def test_left_padded_batch_matches_transformers(pair) -> None:
    hf, ours = pair
    ids, mask = left_padded([9, 4, 1])
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # what Transformers' generate passes
    theirs = hf(input_ids=ids, attention_mask=mask, position_ids=positions).logits
    worst = _worst(ours(ids, mask), theirs, mask)
    assert worst < TOL, f"left-padded logits: max abs diff {worst:.2e} (tolerance {TOL})"


@torch.no_grad()
def test_padding_side_and_batch_do_not_change_a_row(pair) -> None:
    _, ours = pair
    ids, mask = left_padded([9, 4, 1], seed=1)
    batch = ours(ids, mask)
    for row, n in enumerate([9, 4, 1]):
        alone = ours(ids[row : row + 1, -n:])  # (1, n, V), no padding at all
        worst = (batch[row, -n:] - alone[0]).abs().max().item()
        assert worst < 1e-5, f"row {row} padded vs alone: max abs diff {worst:.2e}"
    assert not batch.isnan().any()  # padded queries see no key at all: still no NaN


@torch.no_grad()
def test_causal_lm_loss_matches_transformers(pair) -> None:
    hf, ours = pair
    ids = torch.randint(3, VOCAB, (3, 12), generator=torch.Generator().manual_seed(2))
    labels = ids.clone()
    labels[1, 8:] = -100  # right padding: ignored in the loss
    expected = hf(input_ids=ids, labels=labels).loss  # Transformers shifts inside
    got, _ = causal_lm_loss(ours, {"input_ids": ids[:, :-1], "labels": labels[:, 1:]})
    diff = abs(got.item() - expected.item())
    assert diff < 1e-5, f"loss {got.item():.6f} vs Transformers {expected.item():.6f} ({diff:.2e})"


@torch.no_grad()
def test_future_tokens_do_not_change_earlier_logits(pair) -> None:
    _, ours = pair
    ids = torch.randint(3, VOCAB, (1, 10), generator=torch.Generator().manual_seed(3))
    changed = ids.clone()
    changed[0, 6:] = (changed[0, 6:] + 1) % VOCAB
    worst = (ours(ids)[0, :6] - ours(changed)[0, :6]).abs().max().item()
    assert worst == 0.0, f"positions < 6 moved by {worst:.2e} when tokens ≥ 6 changed"


def test_untied_head_and_loss_goes_down(tmp_path: Path) -> None:
    cfg = ModelConfig(
        family="gpt",
        vocab_size=50,
        hidden_size=32,
        num_layers=1,
        num_heads=2,
        intermediate_size=64,
        max_position=16,
        dropout=0.0,
        attention_dropout=0.0,
        layer_norm_eps=1e-5,
        activation="gelu_tanh",
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = CausalLM(cfg)
    assert model.lm_head is not None and model.lm_head.weight is not model.word.weight
    ids = torch.randint(0, 50, (4, 16), generator=torch.Generator().manual_seed(4))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    batch = {"input_ids": ids[:, :-1], "labels": ids[:, 1:]}
    for _ in range(30):
        loss, _ = causal_lm_loss(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], f"loss {losses[0]:.3f} → {losses[-1]:.3f}"


def test_position_beyond_the_window_is_an_error(pair) -> None:
    _, ours = pair
    with pytest.raises(ValueError, match="beyond max_position 96"):
        ours(torch.zeros(1, 97, dtype=torch.long))
