"""T5's weight-name map: our `Seq2SeqLM` ⇄ Transformers' `T5*` checkpoints (v1.0 and v1.1).

One `Family` (`T5`) for plmkit.checkpoint. Its rows depend on the config (a gated feed-forward,
T5 v1.1, has two input projections), so `rows` is a function; `{i}` expands over the encoder
layers and `{j}` over the decoder's. Decoder rows are a part of their own, so a
`T5EncoderModel` file (no decoder) loads as a body alone.

Key choice: the one embedding matrix is stored once, as `shared`, and the copies some files
hold (`encoder.embed_tokens`, `decoder.embed_tokens`, a tied `lm_head`) are checked equal on
load, not read. The cost is refusing files whose copies were trained apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from plmkit.checkpoint.family import (
    _W,
    ACT_FROM_HF,
    Family,
    Row,
    _expand,
    hf_activation,
    read_fields,
)
from plmkit.config import ModelConfig
from plmkit.runtime.errors import UserError

_ENC, _DEC = "encoder.block.{i}.layer", "decoder.block.{j}.layer"  # Transformers' sub-layer lists
_BIAS = "block.0.layer.0.SelfAttention.relative_attention_bias"  # in the first block only

# Our Seq2SeqLM: `embed` is shared by both stacks and, when tied, the output projection, so it is
# stored once, as "shared". Decoder rows are a part of their own: T5EncoderModel files lack them.
T5_ROWS = (
    Row("body", "embed", "shared", _W),
    Row("body", "encoder.relative_bias", f"encoder.{_BIAS}", _W),
    Row("body", "encoder.layers.{i}.attn_norm", f"{_ENC}.0.layer_norm", _W),
    Row(
        "body",
        "encoder.layers.{i}.attn.qkv",
        tuple(f"{_ENC}.0.SelfAttention.{n}" for n in "qkv"),
        _W,
    ),
    Row("body", "encoder.layers.{i}.attn.out", f"{_ENC}.0.SelfAttention.o", _W),
    Row("body", "encoder.layers.{i}.ffn_norm", f"{_ENC}.1.layer_norm", _W),
    Row("body", "encoder.layers.{i}.ffn.down", f"{_ENC}.1.DenseReluDense.wo", _W),
    Row("body", "encoder.norm", "encoder.final_layer_norm", _W),
    Row("decoder", "decoder.relative_bias", f"decoder.{_BIAS}", _W),
    Row("decoder", "decoder.layers.{j}.attn_norm", f"{_DEC}.0.layer_norm", _W),
    Row(
        "decoder",
        "decoder.layers.{j}.attn.qkv",
        tuple(f"{_DEC}.0.SelfAttention.{n}" for n in "qkv"),
        _W,
    ),
    Row("decoder", "decoder.layers.{j}.attn.out", f"{_DEC}.0.SelfAttention.o", _W),
    Row("decoder", "decoder.layers.{j}.cross_norm", f"{_DEC}.1.layer_norm", _W),
    Row("decoder", "decoder.layers.{j}.cross.q", f"{_DEC}.1.EncDecAttention.q", _W),
    Row(
        "decoder",
        "decoder.layers.{j}.cross.kv",
        tuple(f"{_DEC}.1.EncDecAttention.{n}" for n in "kv"),
        _W,
    ),
    Row("decoder", "decoder.layers.{j}.cross.out", f"{_DEC}.1.EncDecAttention.o", _W),
    Row("decoder", "decoder.layers.{j}.ffn_norm", f"{_DEC}.2.layer_norm", _W),
    Row("decoder", "decoder.layers.{j}.ffn.down", f"{_DEC}.2.DenseReluDense.wo", _W),
    Row("decoder", "decoder.norm", "decoder.final_layer_norm", _W),
    Row("lm_head", "lm_head", "lm_head", _W),
)
# The feed-forward's input projection: `wi`, or gate `wi_0` and `wi_1` when gated (T5 v1.1).
_T5_FFN_PLAIN = (
    Row("body", "encoder.layers.{i}.ffn.up", f"{_ENC}.1.DenseReluDense.wi", _W),
    Row("decoder", "decoder.layers.{j}.ffn.up", f"{_DEC}.2.DenseReluDense.wi", _W),
)
_T5_FFN_GATED = (
    Row("body", "encoder.layers.{i}.ffn.gate", f"{_ENC}.1.DenseReluDense.wi_0", _W),
    Row("body", "encoder.layers.{i}.ffn.up", f"{_ENC}.1.DenseReluDense.wi_1", _W),
    Row("decoder", "decoder.layers.{j}.ffn.gate", f"{_DEC}.2.DenseReluDense.wi_0", _W),
    Row("decoder", "decoder.layers.{j}.ffn.up", f"{_DEC}.2.DenseReluDense.wi_1", _W),
)

# (our ModelConfig field, T5Config field, T5Config's default when a file leaves it out)
_T5_FIELDS: tuple[tuple[str, str, Any], ...] = (
    ("vocab_size", "vocab_size", 32128),
    ("hidden_size", "d_model", 512),
    ("head_dim", "d_kv", 64),
    ("intermediate_size", "d_ff", 2048),
    ("num_layers", "num_layers", 6),
    ("num_heads", "num_heads", 8),
    ("relative_buckets", "relative_attention_num_buckets", 32),
    ("relative_max_distance", "relative_attention_max_distance", 128),
    ("dropout", "dropout_rate", 0.1),
    ("layer_norm_eps", "layer_norm_epsilon", 1e-6),
    ("pad_token_id", "pad_token_id", 0),
)
_T5_POSITIVE = (
    "vocab_size",
    "d_model",
    "d_kv",
    "d_ff",
    "num_layers",
    "num_heads",
    "relative_attention_num_buckets",
)
_T5_EMBED_COPIES = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight")


def _t5_rows(cfg: ModelConfig) -> tuple[Row, ...]:
    return T5_ROWS + (_T5_FFN_GATED if cfg.gated else _T5_FFN_PLAIN)


def _t5_ffn_to_hf(cfg: ModelConfig) -> str:
    """feed_forward_proj: "relu", "gated-gelu" (T5 v1.1), or [gated-]<Transformers activation>."""
    if cfg.gated and cfg.activation == "gelu_tanh":
        return "gated-gelu"  # Transformers reads this spelling as the tanh gelu ("gelu_new")
    if cfg.gated and cfg.activation == "gelu":
        raise UserError(
            "model.activation 'gelu' with model.gated: T5 files cannot say it; use gelu_tanh"
        )
    return ("gated-" if cfg.gated else "") + hf_activation(cfg.activation)


def _t5_ffn_from_hf(proj: Any, source: str) -> tuple[str, bool]:
    """(our activation, gated) from feed_forward_proj, read as Transformers reads it."""
    gated = isinstance(proj, str) and proj.startswith("gated-")
    act = proj.removeprefix("gated-") if isinstance(proj, str) else None
    if proj == "gated-gelu":
        return "gelu_tanh", True
    if act not in ACT_FROM_HF:
        raise UserError(
            f"{source}: feed_forward_proj {proj!r} is not supported "
            f"(relu, gated-gelu, or [gated-]{'|'.join(ACT_FROM_HF)})"
        )
    return ACT_FROM_HF[act], gated


def _t5_to_hf(cfg: ModelConfig) -> dict[str, Any]:
    data = {theirs: getattr(cfg, ours) for ours, theirs, _ in _T5_FIELDS}
    data.update(
        d_kv=cfg.head_dim or cfg.hidden_size // cfg.num_heads,
        num_decoder_layers=cfg.num_decoder_layers or cfg.num_layers,
        feed_forward_proj=_t5_ffn_to_hf(cfg),
        tie_word_embeddings=cfg.tie_word_embeddings,  # also: scale the decoder output (v1.0)
        eos_token_id=cfg.eos_token_id,
        decoder_start_token_id=cfg.pad_token_id,
        is_encoder_decoder=True,
        initializer_factor=1.0,
    )
    return data


def _t5_from_hf(data: dict, source: str) -> ModelConfig:
    values = read_fields(data, _T5_FIELDS, source)
    for theirs in _T5_POSITIVE:
        if data.get(theirs, 1) == 0:
            raise UserError(f"{source}: field '{theirs}' must be ≥ 1")
    decoder_layers = data.get("num_decoder_layers")
    if decoder_layers is None:  # T5Config: as many as the encoder
        decoder_layers = values["num_layers"]
    start, eos = (
        data.get("decoder_start_token_id", values["pad_token_id"]),
        data.get("eos_token_id", 1),
    )
    for key, value in (("num_decoder_layers", decoder_layers), ("eos_token_id", eos)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 0
        ):
            raise UserError(f"{source}: field '{key}' must be a non-negative int, got {value!r}")
    if start != values["pad_token_id"]:
        raise UserError(
            f"{source}: decoder_start_token_id {start!r} is not the pad_token_id "
            f"{values['pad_token_id']} (T5 starts decoding with pad; others unsupported)"
        )
    activation, gated = _t5_ffn_from_hf(data.get("feed_forward_proj", "relu"), source)
    # Transformers ≥ 5 always ties and keeps "scale the decoder output" as a field of its own;
    # older files say both with tie_word_embeddings. Ours: scaled ⇔ tied (else a separate head).
    scaled = data.get("scale_decoder_outputs", data.get("tie_word_embeddings", True) is not False)
    return ModelConfig(
        family="t5",
        **values,
        attention_dropout=values["dropout"],
        num_decoder_layers=decoder_layers,
        activation=activation,
        gated=gated,
        tie_word_embeddings=bool(scaled),
        eos_token_id=eos,
    )


def _t5_fixup(tensors: dict, weights: dict, hf_config: dict, prefix: str, source: Path) -> None:
    """Embedding copies must equal `shared`; a decoder is whole or absent; the LM head follows tying."""
    shared = weights["embed.weight"]
    for name in _T5_EMBED_COPIES:
        if name in tensors and not torch.equal(tensors[name], shared):
            raise UserError(f"{source}: '{name}' differs from 'shared.weight' (unsupported)")
    cfg = _t5_from_hf(hf_config, str(source))
    decoder = [
        (ours, theirs[0]) for row, ours, theirs in _expand(T5, cfg, "") if row.part == "decoder"
    ]
    missing = [theirs for ours, theirs in decoder if ours not in weights]
    if missing and len(missing) < len(decoder):
        raise UserError(f"{source}: tensor '{missing[0]}' is missing (the decoder is incomplete)")
    head = weights.pop("lm_head.weight", None)
    if cfg.tie_word_embeddings and head is not None and not torch.equal(head, shared):
        raise UserError(f"{source}: lm_head differs from shared.weight, but the config ties them")
    if not cfg.tie_word_embeddings:  # no head: tied, as Transformers ≥ 5
        weights["lm_head.weight"] = shared if head is None else head


T5 = Family(
    model_type="t5",
    rows=_t5_rows,
    architectures={
        "T5ForConditionalGeneration": ("", ("body", "decoder", "lm_head")),
        "T5Model": ("", ("body", "decoder")),
        "T5EncoderModel": ("", ("body",)),
    },
    to_hf=_t5_to_hf,
    from_hf=_t5_from_hf,
    buffers=(
        *_T5_EMBED_COPIES,
        "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight",
    ),
    optional_parts=frozenset({"lm_head"}),  # a tied model has no head of its own
    fixup=_t5_fixup,
    layer_counts=lambda cfg: {"i": cfg.num_layers, "j": cfg.num_decoder_layers or cfg.num_layers},
)
