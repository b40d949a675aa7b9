"""Task heads over the shared encoder: sequence classification and regression, token tagging,
QA span extraction, and sentence embeddings.

Each head is a small module holding an `Encoder` as `.encoder`, so plmkit.checkpoint loads the same
body weights into every task. With `pooling="cls"` the classifier reads the pooler output exactly
as Transformers' `BertForSequenceClassification` does, so the saved model runs there unchanged.
`pooling="mean"` (the masked mean of the last hidden states) trains better when [CLS] was never
trained (MLM-only pretraining); its cost is that Transformers, which knows only [CLS] pooling,
gives different outputs for such a model, so the export records it as `plmkit_pooling`.

The tagging and span heads mirror `BertForTokenClassification` (dropout → `classifier` on every
token) and `BertForQuestionAnswering` (`qa_outputs`, no dropout), attribute names included, so
their weights map one to one; neither reads the pooler, which Transformers leaves out of those
two architectures (ours still computes it: one H×H matmul on [CLS], a negligible cost).
`SentenceEmbedder` pools as sentence-transformers does: "cls" is the last hidden state of [CLS]
(not the tanh pooler), "mean" the masked mean.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from plmkit.config import ModelConfig
from plmkit.models.encoder import Encoder
from plmkit.models.layers import init_bert_weights

POOLINGS = ("cls", "mean")


def masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of hidden (B, T, H) over the real tokens of attention_mask (B, T) → (B, H)."""
    if attention_mask is None:
        return hidden.mean(dim=1)
    weights = attention_mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
    total = (hidden * weights).sum(dim=1)  # (B, H)
    return total / weights.sum(dim=1).clamp(min=1.0)


class SequenceClassifier(nn.Module):
    """Encoder → pooled vector → dropout → Linear(H, num_labels); num_labels=1 means regression."""

    def __init__(self, cfg: ModelConfig, num_labels: int, pooling: str = "cls") -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling '{pooling}': use one of {', '.join(POOLINGS)}")
        if num_labels < 1:
            raise ValueError(f"num_labels must be at least 1, got {num_labels}")
        self.pooling = pooling
        self.encoder = Encoder(cfg)
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(cfg.hidden_size, num_labels)
        init_bert_weights(self.classifier, cfg.initializer_range)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """input_ids (B, T) → logits (B, num_labels)."""
        hidden, pooled = self.encoder(
            input_ids, attention_mask, token_type_ids
        )  # (B, T, H), (B, H)
        if self.pooling == "mean":
            pooled = masked_mean(hidden, attention_mask)  # (B, H)
        return self.classifier(self.dropout(pooled))


class TokenClassifier(nn.Module):
    """Encoder → dropout → Linear(H, num_labels) on every token: one tag score per sub-word."""

    def __init__(self, cfg: ModelConfig, num_labels: int) -> None:
        super().__init__()
        if num_labels < 1:
            raise ValueError(f"num_labels must be at least 1, got {num_labels}")
        self.encoder = Encoder(cfg)
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(cfg.hidden_size, num_labels)
        init_bert_weights(self.classifier, cfg.initializer_range)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """input_ids (B, T) → logits (B, T, num_labels)."""
        hidden, _ = self.encoder(input_ids, attention_mask, token_type_ids)  # (B, T, H)
        return self.classifier(self.dropout(hidden))


class SpanLogits(NamedTuple):
    """Start and end scores of every token as an answer boundary, each (B, T)."""

    start: torch.Tensor
    end: torch.Tensor


class SpanExtractor(nn.Module):
    """Encoder → Linear(H, 2) on every token: answer start and end scores (extractive QA)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.encoder = Encoder(cfg)
        self.qa_outputs = nn.Linear(cfg.hidden_size, 2)
        init_bert_weights(self.qa_outputs, cfg.initializer_range)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> SpanLogits:
        """input_ids (B, T) → SpanLogits(start (B, T), end (B, T))."""
        hidden, _ = self.encoder(input_ids, attention_mask, token_type_ids)  # (B, T, H)
        start, end = self.qa_outputs(hidden).unbind(dim=-1)  # (B, T) each
        return SpanLogits(start=start, end=end)


class SentenceEmbedder(nn.Module):
    """Encoder → one vector per text: [CLS]'s last hidden state or the masked mean (B, H)."""

    def __init__(self, cfg: ModelConfig, pooling: str = "mean") -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling '{pooling}': use one of {', '.join(POOLINGS)}")
        self.pooling = pooling
        self.encoder = Encoder(cfg)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """input_ids (B, T) → embeddings (B, H), not normalised."""
        hidden, _ = self.encoder(input_ids, attention_mask, token_type_ids)  # (B, T, H)
        if self.pooling == "cls":
            return hidden[:, 0]
        return masked_mean(hidden, attention_mask)


def encoder_from(model: nn.Module) -> Encoder:
    """The Encoder inside `model` (or `model` itself when it is one)."""
    if isinstance(model, Encoder):
        return model
    encoder = getattr(model, "encoder", None)
    if not isinstance(encoder, Encoder):
        raise TypeError(f"{type(model).__name__} holds no Encoder")
    return encoder
