"""T5 checkpoints in the Hugging Face layout: Transformers loads ours, we load theirs, outputs agree.

Expected values come from `transformers` (eager attention); each assertion states the max abs
difference it saw. Configs are tiny but cover what differs between T5 versions: relu + tied
head (v1.0, output scaled by hidden_size^-0.5) and gated gelu + untied head (v1.1), a head
width that is not hidden_size / num_heads, more decoder than encoder layers, and sequences
longer than relative_max_distance.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import pytest
import torch
import transformers  # a missing test dependency fails, never skips
from safetensors.torch import load_file

from plmkit.checkpoint import load_into, read_checkpoint, save_model
from plmkit.config import GenerationConfig, ModelConfig
from plmkit.models.generate import Seq2SeqDecoding, generate
from plmkit.models.seq2seq import Seq2SeqLM
from plmkit.runtime.errors import UserError

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
TOL = 1e-4
# Transformers ≥ 5 always declares T5's head tied to `shared` and says so on loading any file with
# a separate head, although it then keeps the two apart (its own T5 v1.1 files warn the same).
UNTIED_NOTICE = "both are present in the checkpoints with different values"


def _batch(seed: int = 1) -> dict[str, torch.Tensor]:
    """Right-padded encoder inputs (24, 15, 6 tokens) and decoder inputs (10, 7, 3 tokens)."""
    gen = torch.Generator().manual_seed(seed)
    batch = {}
    for prefix, lengths in (("", [24, 15, 6]), ("decoder_", [10, 7, 3])):
        ids = torch.zeros(3, max(lengths), dtype=torch.long)
        for row, n in enumerate(lengths):
            ids[row, :n] = torch.randint(2, RELU_TIED.vocab_size, (n,), generator=gen)
        batch[f"{prefix}input_ids"], batch[f"{prefix}attention_mask"] = ids, (ids != 0).long()
    return batch


def _ours(cfg: ModelConfig) -> Seq2SeqLM:
    torch.manual_seed(0)
    model = Seq2SeqLM(cfg).eval()
    with torch.no_grad():  # move every tensor off its init value (norms 1)
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return model


def _hf_load(cls_name: str, path: Path, caplog: pytest.LogCaptureFixture) -> torch.nn.Module:
    """Load with Transformers; fail on any missing, unexpected or mismatched key, or warning."""
    transformers.utils.logging.enable_propagation()  # let caplog see the load report
    try:
        with caplog.at_level(logging.WARNING, logger="transformers"):
            model, info = getattr(transformers, cls_name).from_pretrained(
                path, output_loading_info=True, attn_implementation="eager"
            )
    finally:
        transformers.utils.logging.disable_propagation()
    assert not any(info.values()), f"loading info: {info}"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [w for w in warnings if UNTIED_NOTICE not in w], f"transformers warned: {warnings}"
    return model.eval()


def _close(ours: torch.Tensor, theirs: torch.Tensor, what: str, mask: torch.Tensor) -> None:
    assert ours.shape == theirs.shape, f"{what}: shape {tuple(ours.shape)} vs {tuple(theirs.shape)}"
    worst = (ours - theirs).abs()[mask.bool()].max().item()  # real tokens only
    assert worst < TOL, f"{what}: max abs diff {worst:.2e} (tolerance {TOL})"


@CONFIGS
@torch.no_grad()
def test_export_matches_transformers(tmp_path, caplog, cfg) -> None:
    model, batch = _ours(cfg), _batch()
    save_model(model, cfg, tmp_path / "m", "T5ForConditionalGeneration")
    names = set(load_file(tmp_path / "m" / "model.safetensors"))
    assert ("lm_head.weight" in names) != cfg.tie_word_embeddings
    assert not any("embed_tokens" in n for n in names)
    assert read_checkpoint(tmp_path / "m").cfg == cfg  # every field survives config.json
    hf = _hf_load("T5ForConditionalGeneration", tmp_path / "m", caplog)
    ours = model(**batch)
    _close(ours, hf(**batch).logits, "T5 logits", batch["decoder_attention_mask"])


@torch.no_grad()
def test_encoder_and_base_model_exports_match_transformers(tmp_path, caplog) -> None:
    model, batch = _ours(GATED_UNTIED), _batch(seed=2)
    save_model(model, GATED_UNTIED, tmp_path / "enc", "T5EncoderModel")
    save_model(model, GATED_UNTIED, tmp_path / "base", "T5Model")
    assert not any(
        n.startswith("decoder.") for n in load_file(tmp_path / "enc" / "model.safetensors")
    )
    encoder = _hf_load("T5EncoderModel", tmp_path / "enc", caplog)
    base = _hf_load("T5Model", tmp_path / "base", caplog)
    memory = model.encode(batch["input_ids"], batch["attention_mask"])
    theirs = encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    _close(memory, theirs.last_hidden_state, "T5EncoderModel hidden", batch["attention_mask"])
    hidden = model.decoder(
        model.embed(batch["decoder_input_ids"]),
        batch["decoder_attention_mask"].bool()[:, None, None, :],
        memory=memory,
        memory_mask=batch["attention_mask"].bool()[:, None, None, :],
    )
    theirs = base(**batch).last_hidden_state
    _close(hidden, theirs, "T5Model decoder hidden", batch["decoder_attention_mask"])


@pytest.mark.parametrize("num_beams", [1, 3])
@torch.no_grad()
def test_generation_matches_transformers(tmp_path, caplog, num_beams) -> None:
    """20 new tokens, greedy and beam search, on a padded batch; eos 116 ends a greedy row early.
    (Equal layer counts: Transformers 5.24's generate fails on more decoder than encoder layers.)"""
    cfg = dataclasses.replace(GATED_UNTIED, num_decoder_layers=2, eos_token_id=116)
    model, batch = _ours(cfg), _batch()
    save_model(model, cfg, tmp_path / "m", "T5ForConditionalGeneration")
    hf = _hf_load("T5ForConditionalGeneration", tmp_path / "m", caplog)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    ours = generate(
        Seq2SeqDecoding(model, ids, mask),
        GenerationConfig(max_new_tokens=20, num_beams=num_beams, pad_token_id=0),
    )
    theirs = hf.generate(
        input_ids=ids, attention_mask=mask, max_new_tokens=20, num_beams=num_beams, do_sample=False
    )
    assert torch.equal(ours.tokens, theirs[:, 1:]), f"ours {ours.tokens}\ntheirs {theirs[:, 1:]}"
    if num_beams == 1:  # (beams that meet eos here finish, and lose to longer ones)
        assert int(ours.lengths.min()) < 20, "no row met eos: the stopping rule went untested"


def _perturbed_hf(cfg: ModelConfig) -> torch.nn.Module:
    """A Transformers T5 off its init; an untied config gets a head of its own."""
    torch.manual_seed(2)
    hf_config = transformers.T5Config(
        vocab_size=cfg.vocab_size,
        d_model=cfg.hidden_size,
        d_kv=cfg.head_dim,
        d_ff=cfg.intermediate_size,
        num_layers=cfg.num_layers,
        num_decoder_layers=cfg.num_decoder_layers,
        num_heads=cfg.num_heads,
        relative_attention_num_buckets=cfg.relative_buckets,
        relative_attention_max_distance=cfg.relative_max_distance,
        feed_forward_proj="gated-gelu" if cfg.gated else "relu",
        tie_word_embeddings=cfg.tie_word_embeddings,
    )
    model = transformers.T5ForConditionalGeneration(hf_config).eval()
    with torch.no_grad():
        if not cfg.tie_word_embeddings:
            model.lm_head.weight = torch.nn.Parameter(model.shared.weight.clone())
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return model


@CONFIGS
def test_round_trip_from_transformers_is_exact(tmp_path, caplog, cfg) -> None:
    hf = _perturbed_hf(cfg)
    hf.save_pretrained(tmp_path / "hf", safe_serialization=True)
    ckpt = read_checkpoint(tmp_path / "hf")
    assert ckpt.ignored == [] and ckpt.cfg.gated == cfg.gated
    assert ckpt.cfg.tie_word_embeddings == cfg.tie_word_embeddings
    model = Seq2SeqLM(ckpt.cfg).eval()
    assert load_into(model, ckpt, require_heads=True) == []
    save_model(model, ckpt.cfg, tmp_path / "ours", "T5ForConditionalGeneration")
    again = _hf_load("T5ForConditionalGeneration", tmp_path / "ours", caplog)
    expected, got = hf.state_dict(), again.state_dict()
    assert expected.keys() == got.keys()
    for name, tensor in expected.items():
        assert torch.equal(tensor, got[name]), (
            f"{name}: max abs diff {(tensor - got[name]).abs().max()}"
        )
    batch = _batch(seed=3)
    with torch.no_grad():
        _close(
            model(**batch),
            hf(**batch).logits,
            "imported T5 logits",
            batch["decoder_attention_mask"],
        )


def test_encoder_only_file_leaves_the_decoder_at_init(tmp_path) -> None:
    save_model(_ours(RELU_TIED), RELU_TIED, tmp_path / "enc", "T5EncoderModel")
    left = load_into(Seq2SeqLM(RELU_TIED), read_checkpoint(tmp_path / "enc"))
    assert left and all(name.startswith("decoder.") for name in left)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"feed_forward_proj": "gated-silu"}, "feed_forward_proj"),
        ({"decoder_start_token_id": 5}, "decoder_start_token_id"),
        ({"d_kv": "eight"}, "d_kv"),
        ({"num_heads": 0}, "num_heads"),
        ({"eos_token_id": [1, 2]}, "eos_token_id"),
    ],
)
def test_unsupported_config_is_a_user_error(tmp_path, change, match) -> None:
    save_model(_ours(RELU_TIED), RELU_TIED, tmp_path / "m", "T5ForConditionalGeneration")
    config = tmp_path / "m" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), **change}))
    with pytest.raises(UserError, match=match) as err:
        read_checkpoint(tmp_path / "m")
    assert "config.json" in str(err.value) and "\n" not in str(err.value)


def test_incomplete_decoder_is_a_user_error(tmp_path) -> None:
    save_model(_ours(RELU_TIED), RELU_TIED, tmp_path / "m", "T5ForConditionalGeneration")
    config = tmp_path / "m" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "num_decoder_layers": 4}))
    with pytest.raises(UserError, match="decoder.block.3"):
        read_checkpoint(tmp_path / "m")


def test_gated_exact_gelu_cannot_be_saved(tmp_path) -> None:
    cfg = dataclasses.replace(GATED_UNTIED, activation="gelu")
    with pytest.raises(UserError, match="gelu_tanh"):
        save_model(Seq2SeqLM(cfg), cfg, tmp_path / "m", "T5ForConditionalGeneration")
    assert not (tmp_path / "m").exists()
