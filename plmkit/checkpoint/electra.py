"""ELECTRA's weight-name map: our BERT `Encoder` with ELECTRA's heads ⇄ Transformers' `Electra*`.

One `Family` (`ELECTRA`) for plmkit.checkpoint. The body is BERT's, row for row (BERT's own
body rows, under the prefix "electra." and without a pooler, which ELECTRA lacks), plus
`embeddings_project` when the embeddings are narrower than the layers (a generator reading its
discriminator's embeddings). Three architectures: `ElectraForPreTraining` (the discriminator:
models/electra.py's `Discriminator`), `ElectraForMaskedLM` (the generator: `Generator`) and
`ElectraModel` (a bare `Encoder`). The models these files hold are family "bert": fine-tuning an
ELECTRA discriminator builds the same encoder as fine-tuning a BERT, and saves a BERT.

Key choice: the generator's vocabulary projection is its word embedding matrix (tied), so it is
stored once, as the embeddings, and a file's `generator_lm_head.weight` is only checked equal.
The cost, as for BERT: a generator trained with an untied projection is refused.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from plmkit.checkpoint.bert import _BERT_FIELDS, BERT_ROWS, _bert_from_hf, _bert_to_hf
from plmkit.checkpoint.family import _WB, Family, Row
from plmkit.config import ModelConfig
from plmkit.models.encoder import Encoder
from plmkit.runtime.errors import UserError

# Our names are those of models/electra.py's Discriminator and Generator.
_HEAD_ROWS = (
    Row("disc", "head.dense", "discriminator_predictions.dense", _WB),
    Row("disc", "head.dense_prediction", "discriminator_predictions.dense_prediction", _WB),
    Row("mlm", "mlm.dense", "generator_predictions.dense", _WB),
    Row("mlm", "mlm.norm", "generator_predictions.LayerNorm", _WB),
    Row("mlm", "mlm", "generator_lm_head", ("bias",)),
)
_PROJECT_ROW = Row("body", "encoder.embeddings_project", "embeddings_project", _WB)
_LM_HEAD_WEIGHT = "generator_lm_head.weight"

# ElectraConfig's defaults where they differ from BertConfig's (used when a file omits a field)
_DEFAULTS = {"hidden_size": 256, "num_attention_heads": 4, "intermediate_size": 1024}
_ELECTRA_FIELDS: tuple[tuple[str, str, Any], ...] = tuple(
    (ours, theirs, _DEFAULTS.get(theirs, default)) for ours, theirs, default in _BERT_FIELDS
) + (("embedding_size", "embedding_size", 128),)


def projects(cfg: ModelConfig) -> bool:
    """True when the embeddings are not as wide as the layers (an `embeddings_project` exists)."""
    return cfg.embedding_size not in (0, cfg.hidden_size)


def _rows(cfg: ModelConfig) -> tuple[Row, ...]:
    body = tuple(row for row in BERT_ROWS if row.part == "body")
    return body + ((_PROJECT_ROW,) if projects(cfg) else ()) + _HEAD_ROWS


def _electra_to_hf(cfg: ModelConfig) -> dict[str, Any]:
    data = _bert_to_hf(dataclasses.replace(cfg, embedding_size=0))
    data["embedding_size"] = cfg.embedding_size or cfg.hidden_size
    return data


def _electra_from_hf(data: dict, source: str) -> ModelConfig:
    cfg = _bert_from_hf(data, source, fields=_ELECTRA_FIELDS)
    if cfg.embedding_size == cfg.hidden_size:
        cfg = dataclasses.replace(cfg, embedding_size=0)  # no projection: the BERT shape
    return cfg


def _electra_fixup(tensors: dict, weights: dict, hf_config: dict, prefix: str, source: Path) -> None:
    """The generator's vocabulary projection must be its word embeddings (tied)."""
    projection = tensors.get(_LM_HEAD_WEIGHT)
    word = weights["encoder.embeddings.word.weight"]
    if projection is not None and not torch.equal(projection, word):
        raise UserError(
            f"{source}: generator_lm_head differs from the word embeddings (untied: unsupported)"
        )


ELECTRA = Family(
    model_type="electra",
    rows=_rows,
    architectures={
        "ElectraForPreTraining": ("electra.", ("body", "disc")),
        "ElectraForMaskedLM": ("electra.", ("body", "mlm")),
        "ElectraModel": ("", ("body",)),
    },
    to_hf=_electra_to_hf,
    from_hf=_electra_from_hf,
    bare=(Encoder, "encoder."),
    buffers=("embeddings.position_ids", _LM_HEAD_WEIGHT),
    fixup=_electra_fixup,
    holds="bert",
)
