"""The BERT encoder and its pretraining heads: masked language modelling (MLM) and next sentence prediction (NSP).

`Encoder` is the body every encoder task shares (heads.py builds on it); `PretrainingModel` adds
the two heads that `plmkit pretrain` trains. Parameter names are ours (`layers.0.attn.qkv`);
checkpoint/bert.py maps them to Hugging Face's, so a saved model loads in Transformers unchanged.

Key choice: `PretrainingModel` can gather the masked positions *before* the MLM head, so the
vocabulary projection (the largest matmul of a small model) runs on ~15% of the tokens. That is
worth 1.4-2.8x in training speed on CPU; the cost is that the logits then come back flat, (N, V),
and the loss must pick its labels with the same positions.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from plmkit.config import ModelConfig
from plmkit.models.layers import (
    Embeddings,
    EncoderBlock,
    activation_fn,
    init_bert_weights,
    padding_mask,
)
from plmkit.models.unpad import repad, unpad, unpadding


class EncoderOutput(NamedTuple):
    """Hidden states of the last layer (B, T, H) and the pooled [CLS] vector (B, H)."""

    hidden: torch.Tensor
    pooled: torch.Tensor


class PretrainingOutput(NamedTuple):
    """MLM logits, (N, V) at the gathered positions or (B, T, V), and NSP logits (B, 2)."""

    mlm_logits: torch.Tensor
    nsp_logits: torch.Tensor


class Encoder(nn.Module):
    """BERT: embeddings, a stack of post-LN encoder blocks, and a tanh pooler on [CLS]."""

    def __init__(self, cfg: ModelConfig, *, embeddings: Embeddings | None = None) -> None:
        """embeddings: a module to share (ELECTRA's generator reads the discriminator's), kept
        as it is; by default the encoder builds its own, cfg.embedding_size wide."""
        super().__init__()
        width = cfg.embedding_size or cfg.hidden_size
        if embeddings is None:
            embeddings = Embeddings(
                vocab_size=cfg.vocab_size,
                hidden_size=width,
                max_position=cfg.max_position,
                type_vocab_size=cfg.type_vocab_size,
                layer_norm_eps=cfg.layer_norm_eps,
                dropout=cfg.dropout,
                pad_token_id=cfg.pad_token_id,
            )
            shared = None
        else:
            shared = embeddings
        self.embeddings = embeddings
        # embeddings narrower or wider than the layers are projected to their width (ELECTRA)
        self.embeddings_project = (
            nn.Linear(width, cfg.hidden_size) if width != cfg.hidden_size else None
        )
        self.layers = nn.ModuleList(
            EncoderBlock(
                hidden_size=cfg.hidden_size,
                num_heads=cfg.num_heads,
                intermediate_size=cfg.intermediate_size,
                activation=cfg.activation,
                dropout=cfg.dropout,
                attention_dropout=cfg.attention_dropout,
                layer_norm_eps=cfg.layer_norm_eps,
            )
            for _ in range(cfg.num_layers)
        )
        self.pooler = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.unpad = cfg.unpad
        for child in self.children():
            if child is not shared:  # a shared module was initialised by its owner
                child.apply(lambda m: init_bert_weights(m, cfg.initializer_range))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> EncoderOutput:
        """input_ids (B, T), attention_mask (B, T) 1 = token / 0 = pad → EncoderOutput."""
        x = self.embeddings(input_ids, token_type_ids)  # (B, T, E)
        if self.embeddings_project is not None:
            x = self.embeddings_project(x)  # (B, T, H)
        if self.unpad and attention_mask is not None:  # models/unpad.py: skip the padding
            flat = unpadding(attention_mask)
            x = unpad(x, flat)  # (N, H)
            for layer in self.layers:
                x = layer(x, unpadding=flat)
            x = repad(x, flat)  # (B, T, H), zeros at the padding
        else:
            mask = padding_mask(attention_mask)  # (B, 1, 1, T) or None
            for layer in self.layers:
                x = layer(x, mask)
        pooled = torch.tanh(self.pooler(x[:, 0]))  # (B, H)
        return EncoderOutput(hidden=x, pooled=pooled)

    @torch.no_grad()
    def reinit_top(self, count: int, std: float) -> None:
        """Draw the top `count` blocks and the pooler afresh: their pretrained weights are the
        most specific to the pretraining task (Zhang et al. 2021, few-sample fine-tuning)."""
        if not 0 <= count <= len(self.layers):
            raise ValueError(f"cannot re-initialise {count} of {len(self.layers)} layers")
        for block in list(self.layers)[len(self.layers) - count :]:
            block.apply(lambda m: init_bert_weights(m, std))
        if count:
            init_bert_weights(self.pooler, std)


class MaskedLMHead(nn.Module):
    """dense → activation → LayerNorm, then a vocabulary projection tied to the word embeddings.

    embedding_size: the width of those embeddings when it is not hidden_size (an ELECTRA
    generator's): `dense` then maps hidden_size → embedding_size.
    """

    def __init__(
        self,
        hidden_size: int,
        vocab_size: int,
        activation: str,
        layer_norm_eps: float,
        word_weight: nn.Parameter | None = None,
        embedding_size: int | None = None,
    ) -> None:
        super().__init__()
        width = embedding_size or hidden_size
        self.dense = nn.Linear(hidden_size, width)
        self.act = activation_fn(activation)
        self.norm = nn.LayerNorm(width, eps=layer_norm_eps)
        if word_weight is None:
            word_weight = nn.Parameter(torch.empty(vocab_size, width))
            nn.init.normal_(word_weight, std=0.02)
        if tuple(word_weight.shape) != (vocab_size, width):
            raise ValueError(f"tied weight {tuple(word_weight.shape)} != ({vocab_size}, {width})")
        self.weight = word_weight  # the same Parameter as the embeddings': (V, E)
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """h (..., H) → logits (..., V)."""
        h = self.norm(self.act(self.dense(h)))  # (..., E)
        return h @ self.weight.T + self.bias


class PretrainingModel(nn.Module):
    """Encoder + MLM head (tied to the word embeddings) + NSP head on the pooled [CLS]."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.encoder = Encoder(cfg)
        self.mlm = MaskedLMHead(
            hidden_size=cfg.hidden_size,
            vocab_size=cfg.vocab_size,
            activation=cfg.activation,
            layer_norm_eps=cfg.layer_norm_eps,
            word_weight=self.encoder.embeddings.word.weight,
        )
        self.nsp = nn.Linear(cfg.hidden_size, 2)
        init_bert_weights(self.mlm.dense, cfg.initializer_range)
        init_bert_weights(self.nsp, cfg.initializer_range)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        mlm_positions: torch.Tensor | None = None,
    ) -> PretrainingOutput:
        """mlm_positions (N,) are flat indices into B*T; with them mlm_logits is (N, V), else (B, T, V)."""
        hidden, pooled = self.encoder(
            input_ids, attention_mask, token_type_ids
        )  # (B, T, H), (B, H)
        if mlm_positions is not None:
            B, T, H = hidden.shape
            hidden = hidden.reshape(B * T, H).index_select(0, mlm_positions)  # (N, H)
        return PretrainingOutput(mlm_logits=self.mlm(hidden), nsp_logits=self.nsp(pooled))
