"""GPT-2 checkpoints: Transformers loads our exports with equal logits, we import theirs exactly.

Expected values come from `transformers.GPT2LMHeadModel` / `GPT2Model` (eager attention); each
assertion states the max abs difference it saw.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
import transformers  # a missing test dependency fails, never skips
from safetensors.torch import load_file, save_file

from plmkit.checkpoint import load_into, read_checkpoint, save_model
from plmkit.config import ModelConfig
from plmkit.models.decoder import CausalLM
from plmkit.runtime.errors import UserError

CFG = ModelConfig(
    family="gpt",
    vocab_size=500,
    hidden_size=64,
    num_layers=2,
    num_heads=4,
    intermediate_size=128,
    max_position=32,
    layer_norm_eps=1e-5,
    activation="gelu_tanh",
    bos_token_id=0,
    eos_token_id=0,
    pad_token_id=0,
)
TOL = 1e-4


def _ours(cfg: ModelConfig = CFG) -> CausalLM:
    torch.manual_seed(0)
    model = CausalLM(cfg).eval()
    with torch.no_grad():  # move every tensor off its init value (biases 0, LayerNorm 1)
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return model


def _hf_load(cls_name: str, path: Path, caplog: pytest.LogCaptureFixture) -> torch.nn.Module:
    """Load with Transformers; fail on any missing, unexpected or mismatched key, or warning."""
    transformers.utils.logging.enable_propagation()
    try:
        with caplog.at_level(logging.WARNING, logger="transformers"):
            model, info = getattr(transformers, cls_name).from_pretrained(
                path, output_loading_info=True, attn_implementation="eager"
            )
    finally:
        transformers.utils.logging.disable_propagation()
    assert not any(info.values()), f"loading info: {info}"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not warnings, f"transformers warned: {warnings}"
    return model.eval()


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Three right-padded sequences of lengths 12, 7 and 3."""
    ids = torch.randint(1, CFG.vocab_size, (3, 12), generator=torch.Generator().manual_seed(1))
    mask = torch.zeros_like(ids)
    for row, n in enumerate([12, 7, 3]):
        mask[row, :n] = 1
    return ids, mask


def _worst(ours: torch.Tensor, theirs: torch.Tensor, mask: torch.Tensor) -> float:
    assert ours.shape == theirs.shape, f"shape {tuple(ours.shape)} vs {tuple(theirs.shape)}"
    return (ours - theirs).abs()[mask.bool()].max().item()


@pytest.mark.parametrize("tied", [True, False])
@torch.no_grad()
def test_lm_export_matches_transformers(tmp_path, batch, caplog, tied: bool) -> None:
    cfg = ModelConfig(**{**CFG.__dict__, "tie_word_embeddings": tied})
    model = _ours(cfg)
    save_model(model, cfg, tmp_path / "m", "GPT2LMHeadModel")
    names = set(load_file(tmp_path / "m" / "model.safetensors"))
    assert ("lm_head.weight" in names) == (not tied)
    hf = _hf_load("GPT2LMHeadModel", tmp_path / "m", caplog)
    ids, mask = batch
    worst = _worst(model(ids, mask), hf(input_ids=ids, attention_mask=mask).logits, mask)
    assert worst < TOL, (
        f"GPT2LMHeadModel logits (tied={tied}): max abs diff {worst:.2e} (tolerance {TOL})"
    )


@torch.no_grad()
def test_base_model_export_matches_transformers(tmp_path, batch, caplog) -> None:
    model = _ours()
    save_model(model, CFG, tmp_path / "m", "GPT2Model")
    hf = _hf_load("GPT2Model", tmp_path / "m", caplog)
    ids, mask = batch
    hidden = hf(input_ids=ids, attention_mask=mask).last_hidden_state
    worst = _worst(model(ids, mask), hidden @ model.word.weight.T, mask)
    assert worst < TOL, (
        f"GPT2Model hidden states · wteᵀ: max abs diff {worst:.2e} (tolerance {TOL})"
    )


def _perturbed_hf(**config: object) -> torch.nn.Module:
    torch.manual_seed(2)
    hf_config = transformers.GPT2Config(
        vocab_size=CFG.vocab_size,
        n_embd=64,
        n_layer=2,
        n_head=4,
        n_positions=32,
        n_inner=96,
        bos_token_id=0,
        eos_token_id=0,
        **config,
    )
    model = transformers.GPT2LMHeadModel(hf_config).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return model


@pytest.mark.parametrize("tied", [True, False])
def test_import_round_trip_is_exact(tmp_path: Path, caplog, tied: bool) -> None:
    hf = _perturbed_hf(tie_word_embeddings=tied)
    hf.save_pretrained(tmp_path / "theirs")
    ckpt = read_checkpoint(tmp_path / "theirs")
    assert ckpt.ignored == [] and ckpt.cfg.family == "gpt" and ckpt.cfg.intermediate_size == 96
    assert ckpt.cfg.activation == "gelu_tanh" and ckpt.cfg.layer_norm_eps == 1e-5
    model = CausalLM(ckpt.cfg)
    assert load_into(model, ckpt, require_heads=True) == []
    save_model(model, ckpt.cfg, tmp_path / "ours", "GPT2LMHeadModel")
    back = _hf_load("GPT2LMHeadModel", tmp_path / "ours", caplog)
    theirs, again = hf.state_dict(), back.state_dict()
    assert theirs.keys() == again.keys()
    unequal = [name for name in theirs if not torch.equal(theirs[name], again[name])]
    assert not unequal, f"weights changed in the round trip: {unequal}"


def test_old_files_with_mask_buffers_and_no_prefix(tmp_path: Path) -> None:
    """Early GPT-2 files: GPT2Model names (no "transformer."), causal-mask buffers per layer."""
    hf = _perturbed_hf()
    hf.save_pretrained(tmp_path / "m")
    tensors = load_file(tmp_path / "m" / "model.safetensors")
    old = {name.removeprefix("transformer."): t for name, t in tensors.items()}
    for i in range(2):
        old[f"h.{i}.attn.bias"] = torch.ones(1, 1, 32, 32).tril()
        old[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    save_file(old, str(tmp_path / "m" / "model.safetensors"))
    ckpt = read_checkpoint(tmp_path / "m")
    assert ckpt.ignored == []
    model = CausalLM(ckpt.cfg)
    load_into(model, ckpt)
    assert torch.equal(model.word.weight, tensors["transformer.wte.weight"])
    assert torch.equal(
        model.layers[1].attn.qkv.weight, tensors["transformer.h.1.attn.c_attn.weight"].T
    )


def test_unsupported_files_are_user_errors(tmp_path: Path) -> None:
    hf = _perturbed_hf()
    hf.save_pretrained(tmp_path / "m")
    config_path = tmp_path / "m" / "config.json"
    original = json.loads(config_path.read_text())
    for change, message in [
        (
            {"scale_attn_by_inverse_layer_idx": True},
            "scale_attn_by_inverse_layer_idx=True is not supported",
        ),
        ({"n_head": 5}, "not a multiple of num_heads"),
        ({"eos_token_id": "x"}, "field 'eos_token_id' must be a token id"),
        ({"activation_function": "swish"}, "activation 'swish' is not supported"),
    ]:
        config_path.write_text(json.dumps({**original, **change}))
        with pytest.raises(UserError, match=message):
            read_checkpoint(tmp_path / "m")
    config_path.write_text(json.dumps(original))
    tensors = load_file(tmp_path / "m" / "model.safetensors")
    tensors["lm_head.weight"] = tensors["transformer.wte.weight"] + 1.0
    save_file(tensors, str(tmp_path / "m" / "model.safetensors"))
    with pytest.raises(UserError, match="lm_head differs from wte"):
        read_checkpoint(tmp_path / "m")


@pytest.mark.parametrize("tied", [True, False])
@torch.no_grad()
def test_padded_vocabulary_exports_and_imports_unpadded(tmp_path, batch, caplog, tied) -> None:
    """vocab_multiple=64 gives the token matrix 512 rows for 500 tokens (a speed option): the
    logits keep 500 columns, the file holds 500 rows, and a load pads them back."""
    cfg = ModelConfig(**{**CFG.__dict__, "tie_word_embeddings": tied, "vocab_multiple": 64})
    model = _ours(cfg)
    assert model.word.weight.shape[0] == cfg.padded_vocab_size == 512
    save_model(model, cfg, tmp_path / "m", "GPT2LMHeadModel")
    assert load_file(tmp_path / "m" / "model.safetensors")["transformer.wte.weight"].shape[0] == 500
    hf = _hf_load("GPT2LMHeadModel", tmp_path / "m", caplog)
    ids, mask = batch
    theirs = hf(input_ids=ids, attention_mask=mask).logits
    worst = _worst(model(ids, mask), theirs, mask)
    assert worst < TOL, f"padded-vocabulary export: max abs diff {worst:.2e} (tolerance {TOL})"
    again = CausalLM(cfg)  # a padded model loading an unpadded file
    assert load_into(again, read_checkpoint(tmp_path / "m"), require_heads=True) == []
    assert torch.equal(again.eval()(ids, mask), model(ids, mask))


def test_a_padded_model_still_refuses_another_vocabulary(tmp_path) -> None:
    save_model(_ours(), CFG, tmp_path / "m", "GPT2LMHeadModel")  # 500 tokens
    other = CausalLM(ModelConfig(**{**CFG.__dict__, "vocab_size": 510, "vocab_multiple": 64}))
    with pytest.raises(UserError, match="shape"):
        load_into(other, read_checkpoint(tmp_path / "m"))
