"""ELECTRA (Clark et al., 2020): a small generator proposes tokens, the discriminator spots them.

`Discriminator` is our BERT `Encoder` plus ELECTRA's replaced-token head (dense → activation →
one logit per token), the network that fine-tuning keeps. `Generator` is a narrower `Encoder`
with an MLM head, reading the discriminator's own embeddings (token, position, type: shared,
as in the paper) through `embeddings_project`. `ElectraPretrainingModel` holds both and runs one
training example end to end: the generator's logits at the masked positions, a token sampled
from them, the discriminator on the sequence with those tokens put in, and which positions now
differ from the original. The two halves map one to one to Transformers' `ElectraForPreTraining`
and `ElectraForMaskedLM` (checkpoint/electra.py).

Key choice: the sample is drawn by inverting the generator's CDF at a uniform number the batch
carries (one per masked position, drawn by the batch source's NumPy generator), not from torch's
RNG. So the data cursor alone fixes every replacement: exact resume needs nothing more, under
DDP each rank's replacements follow its own data stream, and nothing random sits in the compiled
graph. The cost is a cumulative sum over the vocabulary per masked position, about what the
softmax itself costs. No gradient flows through the sample (the paper's choice: the generator
learns by MLM alone).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import torch
from torch import nn

from plmkit.config import ModelConfig
from plmkit.models.encoder import Encoder, MaskedLMHead
from plmkit.models.layers import Embeddings, activation_fn, init_bert_weights


class ElectraOutput(NamedTuple):
    """Generator logits at the masked positions (N, V), discriminator logits (B, T), and the
    discriminator's targets (B, T): 1.0 where its input differs from the original token."""

    mlm_logits: torch.Tensor
    disc_logits: torch.Tensor
    replaced: torch.Tensor


class DiscriminatorHead(nn.Module):
    """dense → activation → dense_prediction: one "was this token replaced?" logit per token."""

    def __init__(self, hidden_size: int, activation: str) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.act = activation_fn(activation)
        self.dense_prediction = nn.Linear(hidden_size, 1)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (B, T, H) → logits (B, T)."""
        return self.dense_prediction(self.act(self.dense(hidden))).squeeze(-1)


class Discriminator(nn.Module):
    """Encoder + DiscriminatorHead: Transformers' `ElectraForPreTraining`."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.encoder = Encoder(cfg)
        self.head = DiscriminatorHead(cfg.hidden_size, cfg.activation)
        self.head.apply(lambda m: init_bert_weights(m, cfg.initializer_range))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """input_ids (B, T) → replaced-token logits (B, T)."""
        hidden, _ = self.encoder(input_ids, attention_mask, token_type_ids)  # (B, T, H)
        return self.head(hidden)


class Generator(nn.Module):
    """A (narrow) Encoder + MLM head tied to its word embeddings: `ElectraForMaskedLM`.

    embeddings: the discriminator's, shared; then cfg.embedding_size must be their width.
    The MLM head's activation is GELU whatever cfg.activation says, as in Transformers.
    """

    def __init__(self, cfg: ModelConfig, *, embeddings: Embeddings | None = None) -> None:
        super().__init__()
        self.encoder = Encoder(cfg, embeddings=embeddings)
        self.mlm = MaskedLMHead(
            hidden_size=cfg.hidden_size,
            vocab_size=cfg.vocab_size,
            activation="gelu",
            layer_norm_eps=cfg.layer_norm_eps,
            word_weight=self.encoder.embeddings.word.weight,
            embedding_size=cfg.embedding_size or None,
        )
        init_bert_weights(self.mlm.dense, cfg.initializer_range)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        mlm_positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """mlm_positions (N,) flat indices into B*T → logits (N, V); without them (B, T, V)."""
        hidden, _ = self.encoder(input_ids, attention_mask, token_type_ids)  # (B, T, H)
        if mlm_positions is not None:
            B, T, H = hidden.shape
            hidden = hidden.reshape(B * T, H).index_select(0, mlm_positions)  # (N, H)
        return self.mlm(hidden)


def generator_config(cfg: ModelConfig, size: float, layers: float) -> ModelConfig:
    """The generator's shape: `size` of the discriminator's width (heads as wide as its heads)
    and `layers` of its depth, reading its embeddings (cfg.hidden_size wide)."""
    hidden = max(1, round(cfg.hidden_size * size))
    head_width = cfg.hidden_size // cfg.num_heads
    return dataclasses.replace(
        cfg,
        hidden_size=hidden,
        num_heads=max(1, round(hidden / head_width)),
        intermediate_size=max(1, round(cfg.intermediate_size * size)),
        num_layers=max(1, round(cfg.num_layers * layers)),
        embedding_size=cfg.embedding_size or cfg.hidden_size,
    )


@torch.no_grad()
def sample_tokens(logits: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """One token per row of logits (N, V), drawn from their softmax by inverting its CDF at
    uniform (N,) in [0, 1) → ids (N,). The same numbers give the same tokens."""
    cdf = torch.softmax(logits.float(), dim=-1).cumsum(dim=-1)  # (N, V)
    target = (uniform.to(cdf.dtype) * cdf[:, -1]).unsqueeze(-1)  # (N, 1): the total is ~1
    ids = torch.searchsorted(cdf, target, right=True).squeeze(-1)  # (N,)
    return ids.clamp(max=logits.shape[-1] - 1)


class ElectraPretrainingModel(nn.Module):
    """Generator and discriminator sharing their embeddings; one forward runs both."""

    def __init__(self, cfg: ModelConfig, generator_cfg: ModelConfig) -> None:
        super().__init__()
        self.discriminator = Discriminator(cfg)
        self.generator = Generator(generator_cfg, embeddings=self.discriminator.encoder.embeddings)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor,
        mlm_positions: torch.Tensor,
        mlm_labels: torch.Tensor,
        replace_uniform: torch.Tensor,
    ) -> ElectraOutput:
        """input_ids (B, T) masked as for MLM; mlm_positions (N,) flat indices of the masked
        tokens, mlm_labels (N,) their originals, replace_uniform (N,) the sampling numbers."""
        mlm_logits = self.generator(input_ids, attention_mask, token_type_ids, mlm_positions)
        sampled = sample_tokens(mlm_logits.detach(), replace_uniform)  # (N,)
        B, T = input_ids.shape
        corrupted = input_ids.reshape(B * T).index_copy(0, mlm_positions, sampled).reshape(B, T)
        differs = (sampled != mlm_labels).float()  # (N,): a sampled original counts as real
        replaced = torch.zeros(B * T, device=input_ids.device).index_copy(0, mlm_positions, differs)
        disc_logits = self.discriminator(corrupted, attention_mask, token_type_ids)  # (B, T)
        return ElectraOutput(mlm_logits, disc_logits, replaced.reshape(B, T))
