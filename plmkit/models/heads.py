"""Task heads over the shared encoder: sequence classification and regression.

Each head is a small module holding an `Encoder` as `.encoder`, so checkpoint.py loads the same
body weights into every task. With `pooling="cls"` the classifier reads the pooler output exactly
as Transformers' `BertForSequenceClassification` does, so the saved model runs there unchanged.
`pooling="mean"` (the masked mean of the last hidden states) trains better when [CLS] was never
trained (MLM-only pretraining); its cost is that Transformers, which knows only [CLS] pooling,
gives different outputs for such a model, so the export records it as `plmkit_pooling`.
"""

from __future__ import annotations

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


def encoder_from(model: nn.Module) -> Encoder:
    """The Encoder inside `model` (or `model` itself when it is one)."""
    if isinstance(model, Encoder):
        return model
    encoder = getattr(model, "encoder", None)
    if not isinstance(encoder, Encoder):
        raise TypeError(f"{type(model).__name__} holds no Encoder")
    return encoder
