"""BERT's weight-name map: our `Encoder` and its heads ⇄ Transformers' `Bert*` checkpoints.

One `Family` (`BERT`) for plmkit.checkpoint: the rows, config.json in both directions, and the
quirks of real files, applied after mapping (a classifier is read only from a classifier file;
older files keep the MLM bias only on the decoder). Four architectures share the rows:
`BertForPreTraining`, `BertForMaskedLM`, `BertModel` and `BertForSequenceClassification`.

Key choice: the MLM decoder is the word embedding matrix (tied), so it is stored once, as the
embeddings, and a file's decoder copy is only checked equal. The cost is that a BERT trained
with an untied decoder is refused.
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
from plmkit.models.encoder import Encoder
from plmkit.runtime.errors import UserError

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
    Row(
        "body", "encoder.layers.{i}.attn_norm", "encoder.layer.{i}.attention.output.LayerNorm", _WB
    ),
    Row("body", "encoder.layers.{i}.ffn.up", "encoder.layer.{i}.intermediate.dense", _WB),
    Row("body", "encoder.layers.{i}.ffn.down", "encoder.layer.{i}.output.dense", _WB),
    Row("body", "encoder.layers.{i}.ffn_norm", "encoder.layer.{i}.output.LayerNorm", _WB),
    Row("pooler", "encoder.pooler", "pooler.dense", _WB),
    Row("mlm", "mlm.dense", "cls.predictions.transform.dense", _WB),
    Row("mlm", "mlm.norm", "cls.predictions.transform.LayerNorm", _WB),
    Row("mlm", "mlm", "cls.predictions", ("bias",)),
    Row("nsp", "nsp", "cls.seq_relationship", _WB),
    Row("classifier", "classifier", "classifier", _WB),  # per sequence or per token
    Row("qa", "qa_outputs", "qa_outputs", _WB),  # start and end logits of extractive QA
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
CLASSIFIER_FILES = ("BertForSequenceClassification", "BertForTokenClassification")
_DECODER_WEIGHT = "cls.predictions.decoder.weight"
_DECODER_BIAS = "cls.predictions.decoder.bias"


def _bert_to_hf(cfg: ModelConfig) -> dict[str, Any]:
    if cfg.embedding_size not in (0, cfg.hidden_size):
        raise UserError(
            f"a BERT file cannot hold embeddings {cfg.embedding_size} wide under layers "
            f"{cfg.hidden_size} wide (model.embedding_size): only ELECTRA files can"
        )
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


def _bert_from_hf(
    data: dict, source: str, fields: tuple[tuple[str, str, Any], ...] = _BERT_FIELDS
) -> ModelConfig:
    """Our config from a BertConfig's data (or ELECTRA's: the same fields, other `fields`)."""
    for key, wanted in (("position_embedding_type", "absolute"), ("is_decoder", False)):
        if data.get(key, wanted) != wanted:
            raise UserError(f"{source}: {key}={data[key]!r} is not supported (only {wanted!r})")
    if data.get("add_cross_attention"):
        raise UserError(f"{source}: add_cross_attention is not supported")
    values = read_fields(data, fields, source)
    values["activation"] = activation_from_hf(data.get("hidden_act", "gelu"), source, "hidden_act")
    cfg = ModelConfig(family="bert", **values)
    check_heads(cfg, source)
    return cfg


def _bert_fixup(tensors: dict, weights: dict, hf_config: dict, prefix: str, source: Path) -> None:
    """Classifier only from classifier files; legacy decoder bias; the decoder must be tied."""
    architectures = hf_config.get("architectures") or ["BertForSequenceClassification"]
    if not any(a in architectures for a in CLASSIFIER_FILES):
        for key in [k for k in weights if k.startswith("classifier.")]:
            del weights[key]
    if "mlm.dense.weight" in weights and "mlm.bias" not in weights and _DECODER_BIAS in tensors:
        weights["mlm.bias"] = tensors[_DECODER_BIAS]  # old files keep the bias only on the decoder
    decoder = tensors.get(_DECODER_WEIGHT)
    if decoder is not None and not torch.equal(decoder, weights["encoder.embeddings.word.weight"]):
        raise UserError(
            f"{source}: MLM decoder differs from the word embeddings (untied: unsupported)"
        )


BERT = Family(
    model_type="bert",
    rows=BERT_ROWS,
    architectures={
        "BertForPreTraining": ("bert.", ("body", "pooler", "mlm", "nsp")),
        "BertForMaskedLM": ("bert.", ("body", "mlm")),
        "BertModel": ("", ("body", "pooler")),
        "BertForSequenceClassification": ("bert.", ("body", "pooler", "classifier")),
        "BertForTokenClassification": ("bert.", ("body", "classifier")),
        "BertForQuestionAnswering": ("bert.", ("body", "qa")),
    },
    to_hf=_bert_to_hf,
    from_hf=_bert_from_hf,
    bare=(Encoder, "encoder."),
    buffers=("embeddings.position_ids", _DECODER_WEIGHT, _DECODER_BIAS),
    fixup=_bert_fixup,
)
