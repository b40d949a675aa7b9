"""Models to and from disk in the Hugging Face layout; the one map between our weight names and theirs.

A saved model is a plain Hugging Face directory: `config.json`, `model.safetensors` with
Transformers' tensor names, and the tokenizer files. Transformers loads it with
`from_pretrained` unchanged, and `read_checkpoint` reads any Hugging Face directory of a family
we support the same way, so importing a third-party model and reloading our own run are one
code path. No `transformers` import is needed: both formats are plain JSON and safetensors.

Key choice: each family's map is declarative (a table of `Row`s, expanded per layer), so adding
an architecture is a new row, not new code. The cost is that fused QKV weights must be split on
save and joined on load (a row lists several names), and GPT-2's Conv1D weights transposed (a
row says so).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from plmkit.config import ModelConfig
from plmkit.models.encoder import Encoder
from plmkit.runtime import UserError, atomic_dir
from plmkit.text.tokenizer import copy_tokenizer_files


class Row(NamedTuple):
    """One module of a map: `ours` ↔ `theirs` (several names are fused along dim 0).

    `{i}` in a name expands over the (encoder) layers, `{j}` over the decoder layers. "body"
    and "pooler" rows take the architecture's prefix ("bert.", "transformer.", or none); head
    rows never do. `transpose` marks weights stored as (in, out), like GPT-2's Conv1D.
    """

    part: str
    ours: str
    theirs: str | tuple[str, ...]
    params: tuple[str, ...]
    transpose: bool = False


@dataclass(frozen=True)
class Family:
    """Everything checkpoint.py knows about one model family."""

    model_type: str  # config.json's model_type
    rows: tuple[Row, ...] | Callable[[ModelConfig], tuple[Row, ...]]  # or built from the config
    architectures: dict[str, tuple[str, tuple[str, ...]]]  # name → (body prefix, parts it holds)
    to_hf: Callable[[ModelConfig], dict[str, Any]]  # our config → config.json fields
    from_hf: Callable[[dict, str], ModelConfig]  # config.json data, its path → our config
    bare: tuple[type, str] | None = None  # (body-only class, the name prefix it lacks)
    buffers: tuple[str, ...] = ()  # tensors some files hold that carry nothing (before prefix;
    # `{i}` expands over the layers)
    optional_parts: frozenset[str] = frozenset()  # parts saved only when the model has them
    fixup: Callable[[dict, dict, dict, str, Path], None] | None = None  # quirks, after mapping
    layer_counts: Callable[[ModelConfig], dict[str, int]] = field(
        default=lambda cfg: {"i": cfg.num_layers}
    )  # how far `{i}` (and `{j}`) expand


_W, _WB = ("weight",), ("weight", "bias")


def _expand(family: Family, cfg: ModelConfig, prefix: str) -> list[tuple[Row, str, tuple[str, ...]]]:
    """The family's rows expanded to tensors: (row, our name, Transformers names with prefix)."""
    counts = family.layer_counts(cfg)
    rows = family.rows(cfg) if callable(family.rows) else family.rows
    out = []
    for row in rows:
        names = (row.theirs,) if isinstance(row.theirs, str) else row.theirs
        pre = prefix if row.part in ("body", "pooler") else ""
        index = "j" if "{j}" in row.ours else "i" if "{i}" in row.ours else None
        for n in range(counts.get(index, 0)) if index else (None,):
            for p in row.params:
                ours = f"{row.ours.format(**{index: n}) if index else row.ours}.{p}"
                hf = tuple(f"{pre}{(name.format(**{index: n}) if index else name)}.{p}" for name in names)
                out.append((row, ours, hf))
    return out


# ----------------------------------------------------------------------------- BERT

_QKV = tuple(f"encoder.layer.{{i}}.attention.self.{n}" for n in ("query", "key", "value"))

# Our names are those of PretrainingModel / SequenceClassifier; a bare Encoder drops "encoder.".
# mlm.weight is the word embedding matrix (tied), so it is stored once, as the embeddings.
BERT_ROWS = (
    Row("body", "encoder.embeddings.word", "embeddings.word_embeddings", _W),
    Row("body", "encoder.embeddings.position", "embeddings.position_embeddings", _W),
    Row("body", "encoder.embeddings.token_type", "embeddings.token_type_embeddings", _W),
    Row("body", "encoder.embeddings.norm", "embeddings.LayerNorm", _WB),
    Row("body", "encoder.layers.{i}.attn.qkv", _QKV, _WB),
    Row("body", "encoder.layers.{i}.attn.out", "encoder.layer.{i}.attention.output.dense", _WB),
    Row("body", "encoder.layers.{i}.attn_norm", "encoder.layer.{i}.attention.output.LayerNorm", _WB),
    Row("body", "encoder.layers.{i}.ffn.up", "encoder.layer.{i}.intermediate.dense", _WB),
    Row("body", "encoder.layers.{i}.ffn.down", "encoder.layer.{i}.output.dense", _WB),
    Row("body", "encoder.layers.{i}.ffn_norm", "encoder.layer.{i}.output.LayerNorm", _WB),
    Row("pooler", "encoder.pooler", "pooler.dense", _WB),
    Row("mlm", "mlm.dense", "cls.predictions.transform.dense", _WB),
    Row("mlm", "mlm.norm", "cls.predictions.transform.LayerNorm", _WB),
    Row("mlm", "mlm", "cls.predictions", ("bias",)),
    Row("nsp", "nsp", "cls.seq_relationship", _WB),
    Row("classifier", "classifier", "classifier", _WB),
)

# (our ModelConfig field, BertConfig field, BertConfig's default when a file leaves it out)
_BERT_FIELDS: tuple[tuple[str, str, Any], ...] = (
    ("vocab_size", "vocab_size", 30522),
    ("hidden_size", "hidden_size", 768),
    ("num_layers", "num_hidden_layers", 12),
    ("num_heads", "num_attention_heads", 12),
    ("intermediate_size", "intermediate_size", 3072),
    ("max_position", "max_position_embeddings", 512),
    ("type_vocab_size", "type_vocab_size", 2),
    ("dropout", "hidden_dropout_prob", 0.1),
    ("attention_dropout", "attention_probs_dropout_prob", 0.1),
    ("layer_norm_eps", "layer_norm_eps", 1e-12),
    ("pad_token_id", "pad_token_id", 0),
    ("initializer_range", "initializer_range", 0.02),
)
ACT_TO_HF = {"gelu": "gelu", "gelu_tanh": "gelu_pytorch_tanh", "relu": "relu"}
ACT_FROM_HF = {
    "gelu": "gelu",
    "gelu_python": "gelu",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_new": "gelu_tanh",
    "relu": "relu",
}
_DECODER_WEIGHT = "cls.predictions.decoder.weight"
_DECODER_BIAS = "cls.predictions.decoder.bias"


def _bert_to_hf(cfg: ModelConfig) -> dict[str, Any]:
    data = {theirs: getattr(cfg, ours) for ours, theirs, _ in _BERT_FIELDS}
    data.update(
        hidden_act=hf_activation(cfg.activation),
        position_embedding_type="absolute",
        classifier_dropout=None,
        is_decoder=False,
        add_cross_attention=False,
        tie_word_embeddings=True,
    )
    return data


def _bert_from_hf(data: dict, source: str) -> ModelConfig:
    for key, wanted in (("position_embedding_type", "absolute"), ("is_decoder", False)):
        if data.get(key, wanted) != wanted:
            raise UserError(f"{source}: {key}={data[key]!r} is not supported (only {wanted!r})")
    if data.get("add_cross_attention"):
        raise UserError(f"{source}: add_cross_attention is not supported")
    values = read_fields(data, _BERT_FIELDS, source)
    values["activation"] = activation_from_hf(data.get("hidden_act", "gelu"), source, "hidden_act")
    cfg = ModelConfig(family="bert", **values)
    check_heads(cfg, source)
    return cfg


def _bert_fixup(tensors: dict, weights: dict, hf_config: dict, prefix: str, source: Path) -> None:
    """Classifier only from classifier files; legacy decoder bias; the decoder must be tied."""
    architectures = hf_config.get("architectures") or ["BertForSequenceClassification"]
    if "BertForSequenceClassification" not in architectures:
        for key in [k for k in weights if k.startswith("classifier.")]:
            del weights[key]
    if "mlm.dense.weight" in weights and "mlm.bias" not in weights and _DECODER_BIAS in tensors:
        weights["mlm.bias"] = tensors[_DECODER_BIAS]  # old files keep the bias only on the decoder
    decoder = tensors.get(_DECODER_WEIGHT)
    if decoder is not None and not torch.equal(decoder, weights["encoder.embeddings.word.weight"]):
        raise UserError(f"{source}: MLM decoder differs from the word embeddings (untied: unsupported)")


BERT = Family(
    model_type="bert",
    rows=BERT_ROWS,
    architectures={
        "BertForPreTraining": ("bert.", ("body", "pooler", "mlm", "nsp")),
        "BertForMaskedLM": ("bert.", ("body", "mlm")),
        "BertModel": ("", ("body", "pooler")),
        "BertForSequenceClassification": ("bert.", ("body", "pooler", "classifier")),
    },
    to_hf=_bert_to_hf,
    from_hf=_bert_from_hf,
    bare=(Encoder, "encoder."),
    buffers=("embeddings.position_ids", _DECODER_WEIGHT, _DECODER_BIAS),
    fixup=_bert_fixup,
)

# ----------------------------------------------------------------------------- T5

_ENC, _DEC = "encoder.block.{i}.layer", "decoder.block.{j}.layer"  # Transformers' sub-layer lists
_BIAS = "block.0.layer.0.SelfAttention.relative_attention_bias"  # in the first block only

# Our Seq2SeqLM: `embed` is shared by both stacks and, when tied, the output projection, so it is
# stored once, as "shared". Decoder rows are a part of their own: T5EncoderModel files lack them.
T5_ROWS = (
    Row("body", "embed", "shared", _W),
    Row("body", "encoder.relative_bias", f"encoder.{_BIAS}", _W),
    Row("body", "encoder.layers.{i}.attn_norm", f"{_ENC}.0.layer_norm", _W),
    Row("body", "encoder.layers.{i}.attn.qkv", tuple(f"{_ENC}.0.SelfAttention.{n}" for n in "qkv"), _W),
    Row("body", "encoder.layers.{i}.attn.out", f"{_ENC}.0.SelfAttention.o", _W),
    Row("body", "encoder.layers.{i}.ffn_norm", f"{_ENC}.1.layer_norm", _W),
    Row("body", "encoder.layers.{i}.ffn.down", f"{_ENC}.1.DenseReluDense.wo", _W),
    Row("body", "encoder.norm", "encoder.final_layer_norm", _W),
    Row("decoder", "decoder.relative_bias", f"decoder.{_BIAS}", _W),
    Row("decoder", "decoder.layers.{j}.attn_norm", f"{_DEC}.0.layer_norm", _W),
    Row("decoder", "decoder.layers.{j}.attn.qkv", tuple(f"{_DEC}.0.SelfAttention.{n}" for n in "qkv"), _W),
    Row("decoder", "decoder.layers.{j}.attn.out", f"{_DEC}.0.SelfAttention.o", _W),
    Row("decoder", "decoder.layers.{j}.cross_norm", f"{_DEC}.1.layer_norm", _W),
    Row("decoder", "decoder.layers.{j}.cross.q", f"{_DEC}.1.EncDecAttention.q", _W),
    Row("decoder", "decoder.layers.{j}.cross.kv", tuple(f"{_DEC}.1.EncDecAttention.{n}" for n in "kv"), _W),
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
_T5_POSITIVE = ("vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_heads",
                "relative_attention_num_buckets")
_T5_EMBED_COPIES = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight")


def _t5_rows(cfg: ModelConfig) -> tuple[Row, ...]:
    return T5_ROWS + (_T5_FFN_GATED if cfg.gated else _T5_FFN_PLAIN)


def _t5_ffn_to_hf(cfg: ModelConfig) -> str:
    """feed_forward_proj: "relu", "gated-gelu" (T5 v1.1), or [gated-]<Transformers activation>."""
    if cfg.gated and cfg.activation == "gelu_tanh":
        return "gated-gelu"  # Transformers reads this spelling as the tanh gelu ("gelu_new")
    if cfg.gated and cfg.activation == "gelu":
        raise UserError("model.activation 'gelu' with model.gated: T5 files cannot say it; use gelu_tanh")
    return ("gated-" if cfg.gated else "") + hf_activation(cfg.activation)


def _t5_ffn_from_hf(proj: Any, source: str) -> tuple[str, bool]:
    """(our activation, gated) from feed_forward_proj, read as Transformers reads it."""
    gated = isinstance(proj, str) and proj.startswith("gated-")
    act = proj.removeprefix("gated-") if isinstance(proj, str) else None
    if proj == "gated-gelu":
        return "gelu_tanh", True
    if act not in ACT_FROM_HF:
        raise UserError(f"{source}: feed_forward_proj {proj!r} is not supported "
                        f"(relu, gated-gelu, or [gated-]{'|'.join(ACT_FROM_HF)})")
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
    start, eos = data.get("decoder_start_token_id", values["pad_token_id"]), data.get("eos_token_id", 1)
    for key, value in (("num_decoder_layers", decoder_layers), ("eos_token_id", eos)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise UserError(f"{source}: field '{key}' must be a non-negative int, got {value!r}")
    if start != values["pad_token_id"]:
        raise UserError(f"{source}: decoder_start_token_id {start!r} is not the pad_token_id "
                        f"{values['pad_token_id']} (T5 starts decoding with pad; others unsupported)")
    activation, gated = _t5_ffn_from_hf(data.get("feed_forward_proj", "relu"), source)
    # Transformers ≥ 5 always ties and keeps "scale the decoder output" as a field of its own;
    # older files say both with tie_word_embeddings. Ours: scaled ⇔ tied (else a separate head).
    scaled = data.get("scale_decoder_outputs", data.get("tie_word_embeddings", True) is not False)
    return ModelConfig(family="t5", **values, attention_dropout=values["dropout"],
                       num_decoder_layers=decoder_layers, activation=activation, gated=gated,
                       tie_word_embeddings=bool(scaled), eos_token_id=eos)


def _t5_fixup(tensors: dict, weights: dict, hf_config: dict, prefix: str, source: Path) -> None:
    """Embedding copies must equal `shared`; a decoder is whole or absent; the LM head follows tying."""
    shared = weights["embed.weight"]
    for name in _T5_EMBED_COPIES:
        if name in tensors and not torch.equal(tensors[name], shared):
            raise UserError(f"{source}: '{name}' differs from 'shared.weight' (unsupported)")
    cfg = _t5_from_hf(hf_config, str(source))
    decoder = [(ours, theirs[0]) for row, ours, theirs in _expand(T5, cfg, "") if row.part == "decoder"]
    missing = [theirs for ours, theirs in decoder if ours not in weights]
    if missing and len(missing) < len(decoder):
        raise UserError(f"{source}: tensor '{missing[0]}' is missing (the decoder is incomplete)")
    head = weights.pop("lm_head.weight", None)
    if cfg.tie_word_embeddings and head is not None and not torch.equal(head, shared):
        raise UserError(f"{source}: lm_head differs from shared.weight, but the config ties them")
    if not cfg.tie_word_embeddings:
        weights["lm_head.weight"] = shared if head is None else head  # no head: tied, as Transformers ≥ 5


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
    buffers=(*_T5_EMBED_COPIES, "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight"),
    optional_parts=frozenset({"lm_head"}),  # a tied model has no head of its own
    fixup=_t5_fixup,
    layer_counts=lambda cfg: {"i": cfg.num_layers, "j": cfg.num_decoder_layers or cfg.num_layers},
)

# ----------------------------------------------------------------------------- GPT-2


def _conv1d(ours: str, theirs: str) -> tuple[Row, Row]:
    """A GPT-2 Conv1D module: the weight is stored (in, out), the bias as usual."""
    return Row("body", ours, theirs, _W, transpose=True), Row("body", ours, theirs, ("bias",))


# Our names are CausalLM's. The head exists only when untied; tied, it is the word embeddings.
GPT2_ROWS = (
    Row("body", "word", "wte", _W),
    Row("body", "position", "wpe", _W),
    Row("body", "layers.{i}.attn_norm", "h.{i}.ln_1", _WB),
    *_conv1d("layers.{i}.attn.qkv", "h.{i}.attn.c_attn"),  # already fused: q, k, v along out
    *_conv1d("layers.{i}.attn.out", "h.{i}.attn.c_proj"),
    Row("body", "layers.{i}.ffn_norm", "h.{i}.ln_2", _WB),
    *_conv1d("layers.{i}.ffn.up", "h.{i}.mlp.c_fc"),
    *_conv1d("layers.{i}.ffn.down", "h.{i}.mlp.c_proj"),
    Row("body", "norm", "ln_f", _WB),
    Row("lm_head", "lm_head", "lm_head", _W),
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
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
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

# ----------------------------------------------------------------------------- the families

FAMILIES: dict[str, Family] = {"bert": BERT, "gpt": GPT2, "t5": T5}  # ModelConfig.family → Family
ARCHITECTURES: dict[str, Family] = {
    name: family for family in FAMILIES.values() for name in family.architectures
}


# ----------------------------------------------------------------------------- config.json helpers


def hf_activation(name: str) -> str:
    """Our activation name → Transformers' (hidden_act / activation_function)."""
    if name not in ACT_TO_HF:
        raise UserError(f"model.activation '{name}': use one of {', '.join(ACT_TO_HF)}")
    return ACT_TO_HF[name]


def activation_from_hf(act: Any, source: str, key: str = "activation") -> str:
    """Transformers' activation name → ours; an unsupported one is a UserError naming the field."""
    if not isinstance(act, str) or act not in ACT_FROM_HF:
        raise UserError(f"{source}: {key} {act!r} is not supported ({', '.join(ACT_FROM_HF)})")
    return ACT_FROM_HF[act]


def read_fields(data: dict, fields: tuple[tuple[str, str, Any], ...], source: str) -> dict[str, Any]:
    """Our config values from config.json `data` by (ours, theirs, default), type-checked."""
    values: dict[str, Any] = {}
    for ours, theirs, default in fields:
        value = data.get(theirs, default)
        if theirs == "pad_token_id" and value is None:
            value = 0
        kind = type(default)
        types = (int, float) if kind is float else (kind,)
        if isinstance(value, bool) != (kind is bool) or not isinstance(value, types) or (
            kind is not bool and value < 0
        ):
            raise UserError(
                f"{source}: field '{theirs}' must be a non-negative {kind.__name__}, got {value!r}"
            )
        values[ours] = kind(value)
    return values


def check_heads(cfg: ModelConfig, source: str) -> None:
    """Attention heads must divide the width (when the family derives head size from it)."""
    if cfg.num_heads == 0 or cfg.hidden_size % cfg.num_heads:
        raise UserError(
            f"{source}: hidden_size {cfg.hidden_size} is not a multiple of num_heads {cfg.num_heads}"
        )


def family_of(architecture: str) -> Family:
    """The family that writes `architecture`; an unknown name is a UserError listing the known."""
    if architecture not in ARCHITECTURES:
        raise UserError(f"architecture '{architecture}': use one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[architecture]


def config_to_hf(cfg: ModelConfig, architecture: str, extra: dict | None = None) -> dict:
    """config.json data for `architecture`; `extra` keys are added last."""
    family = family_of(architecture)
    if FAMILIES.get(cfg.family) is not family:
        raise UserError(f"architecture {architecture} cannot hold a model of family '{cfg.family}'")
    data: dict[str, Any] = {"architectures": [architecture], "model_type": family.model_type}
    data.update(family.to_hf(cfg))
    data.update(extra or {})
    return data


def config_from_hf(data: dict, source: str) -> ModelConfig:
    """ModelConfig from a config.json's data; unsupported settings are a UserError naming `source`."""
    model_type = data.get("model_type", "bert")
    by_type = {family.model_type: family for family in FAMILIES.values()}
    if model_type not in by_type:
        raise UserError(
            f"{source}: model_type '{model_type}' is not supported ({', '.join(by_type)})"
        )
    return by_type[model_type].from_hf(data, source)


# ----------------------------------------------------------------------------- saving


def _our_state(model: nn.Module, family: Family) -> dict[str, torch.Tensor]:
    """The model's tensors under our full names (a bare body gains its prefix)."""
    prefix = family.bare[1] if family.bare and isinstance(model, family.bare[0]) else ""
    return {prefix + name: t for name, t in model.state_dict().items()}


def _hf_tensors(model: nn.Module, cfg: ModelConfig, architecture: str) -> dict[str, torch.Tensor]:
    """The model's weights under Transformers' names for `architecture`, split and copied to CPU."""
    family = family_of(architecture)
    prefix, parts = family.architectures[architecture]
    state = _our_state(model, family)
    tensors = {}
    for row, ours, theirs in _expand(family, cfg, prefix):
        if row.part not in parts:
            continue
        if ours not in state:
            if row.part in family.optional_parts:
                continue
            raise UserError(f"{architecture} needs '{ours}', which {type(model).__name__} lacks")
        tensor = state[ours].detach()
        pieces = tensor.chunk(len(theirs), dim=0)  # fused QKV → query, key, value
        for name, piece in zip(theirs, pieces, strict=True):
            piece = piece.T if row.transpose else piece
            tensors[name] = piece.to("cpu", copy=True).contiguous()
    return tensors


def _labels_config(model: nn.Module, extra: dict) -> dict:
    """Label names and pooling a classifier needs in config.json, unless `extra` already says."""
    out = dict(extra)
    classifier = getattr(model, "classifier", None)
    if isinstance(classifier, nn.Linear) and "id2label" not in out:
        out["id2label"] = {str(i): f"LABEL_{i}" for i in range(classifier.out_features)}
        out["label2id"] = {f"LABEL_{i}": i for i in range(classifier.out_features)}
    if isinstance(classifier, nn.Linear) and len(out["id2label"]) != classifier.out_features:
        raise UserError(
            f"id2label names {len(out['id2label'])} labels, the classifier has {classifier.out_features}"
        )
    if hasattr(model, "pooling") and "plmkit_pooling" not in out:
        out["plmkit_pooling"] = model.pooling
    return out


def save_model(
    model: nn.Module,
    cfg: ModelConfig,
    out_dir: str | Path,
    architecture: str,
    *,
    extra_config: dict | None = None,
    tokenizer_dir: str | Path | None = None,
) -> None:
    """Write `model` to `out_dir` as a Hugging Face `architecture` directory, atomically."""
    hf_config = config_to_hf(cfg, architecture)
    tensors = _hf_tensors(model, cfg, architecture)
    extra = extra_config or {}
    if architecture.endswith("ForSequenceClassification"):
        extra = _labels_config(model, extra)
    hf_config.update(extra)
    with atomic_dir(out_dir) as tmp:
        if tokenizer_dir is not None:
            copy_tokenizer_files(tokenizer_dir, tmp)
        (tmp / "config.json").write_text(json.dumps(hf_config, indent=2, sort_keys=True) + "\n")
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})


# ----------------------------------------------------------------------------- loading


class Checkpoint(NamedTuple):
    """A model read from disk: its config, weights under our names, and the raw config.json."""

    cfg: ModelConfig
    weights: dict[str, torch.Tensor]
    hf_config: dict
    ignored: list[str]  # tensors in the file that no part of our models uses
    path: Path  # the weights file read


def resolve_model_dir(path: str | Path) -> Path:
    """`path/final` when `path` is a run directory holding a finished model, else `path`."""
    path = Path(path)
    if (path / "final" / "config.json").is_file():
        return path / "final"
    return path


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read a plmkit export, a run directory, or any Hugging Face directory of a known family."""
    directory = resolve_model_dir(path)
    hf_config = read_hf_config(directory)
    cfg = config_from_hf(hf_config, str(directory / "config.json"))
    tensors, weights_path = _read_tensors(directory)
    weights, ignored = _to_our_names(tensors, cfg, hf_config, weights_path)
    return Checkpoint(cfg, weights, hf_config, ignored, weights_path)


def read_hf_config(path: str | Path) -> dict:
    """The config.json of a model (or run) directory as plain data, without reading weights."""
    directory = resolve_model_dir(path)
    if not directory.is_dir():
        raise UserError(f"{directory}: model directory not found")
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise UserError(f"{config_path}: not found; a model directory holds config.json")
    try:
        hf_config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{config_path}: not valid JSON ({err})") from None
    if not isinstance(hf_config, dict):
        raise UserError(f"{config_path}: expected a JSON object")
    return hf_config


def _read_tensors(directory: Path) -> tuple[dict[str, torch.Tensor], Path]:
    """All tensors of the directory's weights file(s): safetensors first, then pytorch_model.bin."""
    single = directory / "model.safetensors"
    index = directory / "model.safetensors.index.json"
    legacy = directory / "pytorch_model.bin"
    if single.is_file():
        return _load_safetensors(single), single
    if index.is_file():
        try:
            shards = sorted(
                set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
            )
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
            raise UserError(f"{index}: not a valid safetensors index (no weight_map)") from None
        tensors: dict[str, torch.Tensor] = {}
        for shard in shards:
            tensors.update(_load_safetensors(directory / shard))
        return tensors, index
    if legacy.is_file():
        try:
            state = torch.load(legacy, map_location="cpu", weights_only=True)
        except Exception as err:  # any unpickling failure means the file is unusable
            raise UserError(f"{legacy}: cannot be read as weights ({type(err).__name__})") from None
        if not isinstance(state, dict):
            raise UserError(f"{legacy}: expected a dict of tensors")
        return state, legacy
    raise UserError(f"{directory}: no model.safetensors (or pytorch_model.bin) found")


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise UserError(f"{path}: weights file not found")
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"{path}: corrupt or truncated safetensors file ({reason})") from None


def _to_our_names(
    tensors: dict[str, torch.Tensor], cfg: ModelConfig, hf_config: dict, source: Path
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Map Transformers names to ours; the body must be complete, heads are taken when present."""
    family = FAMILIES[cfg.family]
    tensors = {_modern_name(k): v for k, v in tensors.items()}
    prefixes = sorted({p for p, _ in family.architectures.values() if p}, key=len, reverse=True)
    prefix = next((p for p in prefixes if any(k.startswith(p) for k in tensors)), "")
    weights: dict[str, torch.Tensor] = {}
    layers = range(family.layer_counts(cfg).get("i", 0))
    buffers = {name.format(i=n) for name in family.buffers for n in layers} | set(family.buffers)
    used = {prefix + name for name in buffers} | buffers
    for row, ours, theirs in _expand(family, cfg, prefix):
        missing = [name for name in theirs if name not in tensors]
        if row.part == "body" and missing:
            raise UserError(
                f"{source}: tensor '{missing[0]}' is missing (config says {cfg.num_layers} layers)"
            )
        if missing:
            continue
        pieces = [tensors[name].T if row.transpose else tensors[name] for name in theirs]
        weights[ours] = pieces[0] if len(pieces) == 1 else torch.cat(pieces)  # (3H, ...) fused QKV
        used.update(theirs)
    if family.fixup is not None:
        family.fixup(tensors, weights, hf_config, prefix, source)
    return weights, sorted(set(tensors) - used)


def _modern_name(name: str) -> str:
    """Old TensorFlow-converted files call LayerNorm's weight and bias gamma and beta."""
    return name.replace("LayerNorm.gamma", "LayerNorm.weight").replace(
        "LayerNorm.beta", "LayerNorm.bias"
    )


def _body_names(family: Family, cfg: ModelConfig) -> set[str]:
    return {ours for row, ours, _ in _expand(family, cfg, "") if row.part == "body"}


def load_into(model: nn.Module, ckpt: Checkpoint, *, require_heads: bool = False) -> list[str]:
    """Copy the checkpoint's weights into `model`; return the names of parameters left at init."""
    family = FAMILIES[ckpt.cfg.family]
    prefix = family.bare[1] if family.bare and isinstance(model, family.bare[0]) else ""
    body = _body_names(family, ckpt.cfg)
    left = []
    with torch.no_grad():
        for name, param in model.named_parameters():  # a tied weight is listed once
            key = prefix + name
            value = ckpt.weights.get(key)
            if value is not None and value.shape != param.shape:
                if key in body or require_heads:
                    raise UserError(
                        f"{ckpt.path}: '{key}' has shape {tuple(value.shape)}, the model expects {tuple(param.shape)}"
                    )
                value = None  # a head for another label set: start it fresh
            if value is None:
                left.append(name)
                continue
            param.copy_(value)
    required = [name for name in left if prefix + name in body or require_heads]
    if required:
        raise UserError(f"{ckpt.path}: no weights for {', '.join(required[:3])}")
    return left
