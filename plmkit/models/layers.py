"""The Transformer building blocks, one copy of each: attention, feed-forward, encoder block, embeddings.

Every model family (BERT encoder now; GPT decoder and T5 later) is composed from these. Layers take
plain keyword arguments; only a top-level model reads a `ModelConfig`.

Key choice: attention keeps query, key and value in one fused `qkv` Linear and calls PyTorch's
`scaled_dot_product_attention`, which picks a flash or memory-efficient kernel when one applies.
One matmul instead of three is faster on every device; the cost is that checkpoint.py must split
and re-join the fused weight to match Hugging Face's separate query/key/value tensors.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": F.gelu,  # exact, with erf (BERT's)
    "gelu_tanh": functools.partial(F.gelu, approximate="tanh"),
    "relu": F.relu,
}


def activation_fn(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The activation function called `name` (gelu, gelu_tanh or relu)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation '{name}': use one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]


class SelfAttention(nn.Module):
    """Multi-head self-attention with a fused QKV projection."""

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        dropout: float,
        bias: bool = True,
        causal: bool = False,
    ) -> None:
        super().__init__()
        if hidden_size % num_heads != 0:
            raise ValueError(
                f"hidden_size {hidden_size} is not a multiple of num_heads {num_heads}"
            )
        self.num_heads = num_heads
        self.dropout = dropout
        self.causal = causal
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size, bias=bias)
        self.out = nn.Linear(hidden_size, hidden_size, bias=bias)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, H), attn_mask bool (B, 1, 1|T, T) with True = may attend → (B, T, H)."""
        B, T, H = x.shape
        hs = H // self.num_heads
        q, k, v = self.qkv(x).split(H, dim=-1)  # 3 × (B, T, H)
        q = q.view(B, T, self.num_heads, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.num_heads, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.num_heads, hs).transpose(1, 2)  # (B, nh, T, hs)
        is_causal = self.causal and attn_mask is None
        if self.causal and attn_mask is not None:
            future = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()  # (T, T)
            attn_mask = attn_mask & future
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attn_mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=is_causal,
        )  # softmax(q kᵀ / √hs) v: (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, H)  # (B, T, H)
        return self.out(y)


class FeedForward(nn.Module):
    """Position-wise MLP: down(act(up(x)))."""

    def __init__(
        self, hidden_size: int, intermediate_size: int, activation: str, dropout: float
    ) -> None:
        super().__init__()
        self.act = activation_fn(activation)
        self.up = nn.Linear(hidden_size, intermediate_size)
        self.down = nn.Linear(intermediate_size, hidden_size)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, H) → (B, T, H)."""
        return self.drop(self.down(self.act(self.up(x))))


class EncoderBlock(nn.Module):
    """BERT's post-LayerNorm block: x = LN(x + attn(x)); x = LN(x + ffn(x))."""

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        intermediate_size: int,
        activation: str,
        dropout: float,
        attention_dropout: float,
        layer_norm_eps: float,
    ) -> None:
        super().__init__()
        self.attn = SelfAttention(hidden_size, num_heads, attention_dropout)
        self.attn_drop = nn.Dropout(dropout)
        self.attn_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.ffn = FeedForward(hidden_size, intermediate_size, activation, dropout)
        self.ffn_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, H) → (B, T, H)."""
        x = self.attn_norm(x + self.attn_drop(self.attn(x, attn_mask)))
        x = self.ffn_norm(x + self.ffn(x))
        return x


class Embeddings(nn.Module):
    """Word + absolute position + token type embeddings, then LayerNorm and dropout."""

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int,
        max_position: int,
        type_vocab_size: int,
        layer_norm_eps: float,
        dropout: float,
        pad_token_id: int,
    ) -> None:
        super().__init__()
        self.word = nn.Embedding(vocab_size, hidden_size, padding_idx=pad_token_id)
        self.position = nn.Embedding(max_position, hidden_size)
        self.token_type = nn.Embedding(type_vocab_size, hidden_size)
        self.norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.drop = nn.Dropout(dropout)

    def forward(
        self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """input_ids (B, T), token_type_ids (B, T) or None (all 0) → (B, T, H)."""
        T = input_ids.shape[1]
        if T > self.position.num_embeddings:
            raise ValueError(f"sequence length {T} > max_position {self.position.num_embeddings}")
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        positions = torch.arange(T, device=input_ids.device)  # (T,)
        x = self.word(input_ids) + self.token_type(token_type_ids) + self.position(positions)
        return self.drop(self.norm(x))


def padding_mask(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """(B, T) 1 = token, 0 = padding → bool (B, 1, 1, T) for attention over keys, or None."""
    if attention_mask is None:
        return None
    return attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T)


@torch.no_grad()
def init_bert_weights(module: nn.Module, std: float) -> None:
    """BERT's init for one module: normal(0, std) weights, zero biases and padding row, LN 1/0."""
    if isinstance(module, nn.Linear):
        module.weight.normal_(0.0, std)
        if module.bias is not None:
            module.bias.zero_()
    elif isinstance(module, nn.Embedding):
        module.weight.normal_(0.0, std)
        if module.padding_idx is not None:
            module.weight[module.padding_idx].zero_()
    elif isinstance(module, nn.LayerNorm):
        module.weight.fill_(1.0)
        module.bias.zero_()
