"""GPT-2's weight-name map: our `CausalLM` ⇄ Transformers' `GPT2Model` / `GPT2LMHeadModel`.

One `Family` (`GPT2`) for plmkit.checkpoint: the rows, config.json in both directions, and the
GPT2Config switches our decoder does not implement (a file that turns one on is refused by name).

Key choice: GPT-2 stores its linear layers as Conv1D, weight (in, out); a row marks them
`transpose`, so our modules stay plain `nn.Linear`. The cost is a transpose of every Conv1D
matrix on save and load. A tied model has no head of its own: the head is the word embeddings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from plmkit.checkpoint.family import (
    _W,
    _WB,
    Family,
    Row,
    activation_from_hf,
    check_heads,
    hf_activation,
    read_fields,
)
from plmkit.config import ModelConfig
from plmkit.runtime.errors import UserError


def _conv1d(ours: str, theirs: str) -> tuple[Row, Row]:
    """A GPT-2 Conv1D module: the weight is stored (in, out), the bias as usual."""
    return Row("body", ours, theirs, _W, transpose=True), Row("body", ours, theirs, ("bias",))


# Our names are CausalLM's. The head exists only when untied; tied, it is the word embeddings.
GPT2_ROWS = (
    Row("body", "word", "wte", _W, vocab=True),
    Row("body", "position", "wpe", _W),
    Row("body", "layers.{i}.attn_norm", "h.{i}.ln_1", _WB),
    *_conv1d("layers.{i}.attn.qkv", "h.{i}.attn.c_attn"),  # already fused: q, k, v along out
    *_conv1d("layers.{i}.attn.out", "h.{i}.attn.c_proj"),
    Row("body", "layers.{i}.ffn_norm", "h.{i}.ln_2", _WB),
    *_conv1d("layers.{i}.ffn.up", "h.{i}.mlp.c_fc"),
    *_conv1d("layers.{i}.ffn.down", "h.{i}.mlp.c_proj"),
    Row("body", "norm", "ln_f", _WB),
    Row("lm_head", "lm_head", "lm_head", _W, vocab=True),
)

# (our ModelConfig field, GPT2Config field, GPT2Config's default when a file leaves it out)
_GPT2_FIELDS: tuple[tuple[str, str, Any], ...] = (
    ("vocab_size", "vocab_size", 50257),
    ("hidden_size", "n_embd", 768),
    ("num_layers", "n_layer", 12),
    ("num_heads", "n_head", 12),
    ("max_position", "n_positions", 1024),
    ("dropout", "resid_pdrop", 0.1),  # embd_pdrop is written equal, and not read back
    ("attention_dropout", "attn_pdrop", 0.1),
    ("layer_norm_eps", "layer_norm_epsilon", 1e-5),
    ("initializer_range", "initializer_range", 0.02),
    ("tie_word_embeddings", "tie_word_embeddings", True),
)
# GPT2Config switches our model does not implement, with the value it must have.
_GPT2_FIXED = (
    ("scale_attn_weights", True),
    ("scale_attn_by_inverse_layer_idx", False),
    ("add_cross_attention", False),
)


def _gpt2_to_hf(cfg: ModelConfig) -> dict[str, Any]:
    data = {theirs: getattr(cfg, ours) for ours, theirs, _ in _GPT2_FIELDS}
    data.update(
        n_inner=cfg.intermediate_size,
        activation_function=hf_activation(cfg.activation),
        embd_pdrop=cfg.dropout,
        bos_token_id=cfg.bos_token_id,
        eos_token_id=cfg.eos_token_id,
        pad_token_id=cfg.pad_token_id,
        reorder_and_upcast_attn=False,
        **dict(_GPT2_FIXED),
    )
    return data


def _gpt2_from_hf(data: dict, source: str) -> ModelConfig:
    for key, wanted in _GPT2_FIXED:
        if data.get(key, wanted) != wanted:
            raise UserError(f"{source}: {key}={data[key]!r} is not supported (only {wanted!r})")
    values = read_fields(data, _GPT2_FIELDS, source)
    ids = {}
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        value = data.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 0
        ):
            raise UserError(f"{source}: field '{key}' must be a token id or null, got {value!r}")
        ids[key] = value
    inner = data.get("n_inner") or 4 * values["hidden_size"]  # GPT2Config: null = 4 × n_embd
    if isinstance(inner, bool) or not isinstance(inner, int):
        raise UserError(f"{source}: field 'n_inner' must be an int or null, got {inner!r}")
    pad = ids["pad_token_id"] if ids["pad_token_id"] is not None else ids["eos_token_id"] or 0
    cfg = ModelConfig(
        family="gpt",
        intermediate_size=inner,
        activation=activation_from_hf(data.get("activation_function", "gelu_new"), source),
        bos_token_id=ids["bos_token_id"],
        eos_token_id=ids["eos_token_id"],
        pad_token_id=pad,
        **values,
    )
    check_heads(cfg, source)
    return cfg


def _gpt2_fixup(tensors: dict, weights: dict, hf_config: dict, prefix: str, source: Path) -> None:
    """A tied model's head is the word embeddings: a file may repeat it, but only unchanged."""
    if hf_config.get("tie_word_embeddings", True):
        head = weights.pop("lm_head.weight", None)
        if head is not None and not torch.equal(head, weights["word.weight"]):
            raise UserError(f"{source}: lm_head differs from wte, but the config ties them")


GPT2 = Family(
    model_type="gpt2",
    rows=GPT2_ROWS,
    architectures={
        "GPT2LMHeadModel": ("transformer.", ("body", "lm_head")),
        "GPT2Model": ("", ("body",)),
    },
    to_hf=_gpt2_to_hf,
    from_hf=_gpt2_from_hf,
    buffers=("h.{i}.attn.bias", "h.{i}.attn.masked_bias"),  # causal masks older files saved
    optional_parts=frozenset({"lm_head"}),  # a tied model has no head of its own
    fixup=_gpt2_fixup,
)
