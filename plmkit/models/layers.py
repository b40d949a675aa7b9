"""The Transformer building blocks, one copy of each: attention, feed-forward, encoder block, embeddings.

Every model family (BERT encoder, GPT decoder, T5 encoder-decoder) is composed from these. Layers take
plain keyword arguments; only a top-level model reads a `ModelConfig`.

Key choice: attention keeps query, key and value in one fused `qkv` Linear and calls PyTorch's
`scaled_dot_product_attention`, which picks a flash or memory-efficient kernel when one applies.
One matmul instead of three is faster on every device; the cost is that plmkit.checkpoint must
split and re-join the fused weight to match Hugging Face's separate query/key/value tensors.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from plmkit.models.unpad import Unpadding, varlen_attention

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


class KVCache:
    """Keys and values of the tokens seen so far in one attention layer, for incremental decoding.

    Self-attention appends each step's keys and values; cross-attention (`static`) computes
    them once from the encoder's output and reuses them. Generation reorders the batch
    (beam search) with `select`. The one mutable object in models/: the cost of decoding
    one token at a time without recomputing the past.
    """

    def __init__(self, static: bool = False) -> None:
        self.static = static
        self.k: torch.Tensor | None = None  # (B, nh, S, hs)
        self.v: torch.Tensor | None = None

    @property
    def length(self) -> int:
        """Number of positions cached."""
        return 0 if self.k is None else self.k.shape[2]

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append this step's k, v (B, nh, t, hs); return all keys and values so far."""
        if self.k is None or self.static:
            self.k, self.v = k, v
        else:
            self.k = torch.cat([self.k, k], dim=2)  # (B, nh, S + t, hs)
            self.v = torch.cat([self.v, v], dim=2)
        return self.k, self.v

    def select(self, index: torch.Tensor) -> None:
        """Keep batch rows `index` (B',) in that order: beams that survived a step."""
        if self.k is not None:
            self.k, self.v = self.k.index_select(0, index), self.v.index_select(0, index)


class Attention(nn.Module):
    """Multi-head attention: self-attention with a fused QKV projection, or cross-attention
    (`cross=True`: queries from x, fused keys and values from an encoder's output)."""

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        dropout: float,
        *,
        bias: bool = True,
        causal: bool = False,
        cross: bool = False,
        head_dim: int = 0,
        scale: float | None = None,
    ) -> None:
        super().__init__()
        if not head_dim:  # the usual split of the width; T5 may choose its own head width
            if hidden_size % num_heads:
                raise ValueError(
                    f"hidden_size {hidden_size} is not a multiple of num_heads {num_heads}"
                )
            head_dim = hidden_size // num_heads
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.dropout = dropout
        self.causal = causal
        self.cross = cross
        self.scale = scale  # None = 1/√head_dim; T5 uses 1 (its init absorbs the scaling)
        inner = num_heads * head_dim
        if cross:
            self.q = nn.Linear(hidden_size, inner, bias=bias)
            self.kv = nn.Linear(hidden_size, 2 * inner, bias=bias)
        else:
            self.qkv = nn.Linear(hidden_size, 3 * inner, bias=bias)
        self.out = nn.Linear(inner, hidden_size, bias=bias)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        B, T, _ = t.shape
        return t.view(B, T, self.num_heads, self.head_dim).transpose(1, 2)  # (B, nh, T, hs)

    def forward(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        *,
        memory: torch.Tensor | None = None,
        position_bias: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        """x (B, T, H) → (B, T, H).

        attn_mask: bool (B, 1, 1|T, S), True = may attend, over all S keys (cached ones too).
        memory: (B, S, H) encoder output for cross-attention. position_bias: float
        (1|B, nh, T, S) added to the scores (T5). cache: this layer's KVCache when decoding.
        """
        B, T, _ = x.shape
        inner = self.num_heads * self.head_dim
        if self.cross:
            q = self._heads(self.q(x))
            if cache is not None and cache.k is not None:  # encoder keys: computed once
                k, v = cache.k, cache.v
            else:
                k, v = (self._heads(t) for t in self.kv(memory).split(inner, dim=-1))
                if cache is not None:
                    k, v = cache.update(k, v)
        else:
            q, k, v = (self._heads(t) for t in self.qkv(x).split(inner, dim=-1))
            if cache is not None:
                k, v = cache.update(k, v)  # (B, nh, S, hs) with S = past + T
        S = k.shape[2]
        is_causal = self.causal and attn_mask is None and position_bias is None and S == T
        if self.causal and not is_causal:
            # query t sits at key position S - T + t and may see keys up to there
            future = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(S - T)  # (T, S)
            attn_mask = future if attn_mask is None else attn_mask & future
        if position_bias is not None:
            bias = position_bias
            if attn_mask is not None:
                bias = bias.masked_fill(~attn_mask, torch.finfo(bias.dtype).min)
            attn_mask = bias.to(q.dtype)  # (B|1, nh, T, S) additive
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attn_mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=is_causal,
            scale=self.scale,
        )  # softmax(q kᵀ · scale + bias) v: (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, inner)  # (B, T, nh·hs)
        return self.out(y)

    def forward_unpadded(self, x: torch.Tensor, unpadding: Unpadding) -> torch.Tensor:
        """Bidirectional self-attention on a flat batch of real tokens: x (N, H) → (N, H)."""
        y = varlen_attention(
            self.qkv(x),  # (N, 3·nh·hs)
            unpadding,
            self.num_heads,
            self.head_dim,
            dropout_p=self.dropout if self.training else 0.0,
            scale=self.scale,
        )  # (N, nh·hs)
        return self.out(y)


class FeedForward(nn.Module):
    """Position-wise MLP: down(act(up(x))), or down(act(gate(x)) · up(x)) when `gated` (T5 v1.1)."""

    def __init__(
        self,
        hidden_size: int,
        intermediate_size: int,
        activation: str,
        dropout: float,
        *,
        bias: bool = True,
        gated: bool = False,
    ) -> None:
        super().__init__()
        self.act = activation_fn(activation)
        self.gate = nn.Linear(hidden_size, intermediate_size, bias=bias) if gated else None
        self.up = nn.Linear(hidden_size, intermediate_size, bias=bias)
        self.down = nn.Linear(intermediate_size, hidden_size, bias=bias)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, H) → (B, T, H)."""
        if self.gate is None:
            h = self.act(self.up(x))  # (B, T, I)
        else:
            h = self.act(self.gate(x)) * self.up(x)  # (B, T, I)
        return self.drop(self.down(h))


class LayerCache(NamedTuple):
    """One block's caches when decoding: its self-attention and, in a T5 decoder, cross-attention."""

    self_attn: KVCache
    cross_attn: KVCache | None = None


class PreNormBlock(nn.Module):
    """The pre-norm block of GPT-2 and T5: x += attn(norm(x)); [x += cross(norm(x), memory)];
    x += ffn(norm(x)). Norms are LayerNorm (GPT-2) or RMSNorm (T5)."""

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        intermediate_size: int,
        activation: str,
        dropout: float,
        attention_dropout: float,
        *,
        norm: str = "layer",
        eps: float = 1e-5,
        bias: bool = True,
        causal: bool = False,
        cross: bool = False,
        head_dim: int = 0,
        scale: float | None = None,
        gated: bool = False,
    ) -> None:
        super().__init__()
        make_norm = {"layer": nn.LayerNorm, "rms": nn.RMSNorm}[norm]
        heads = dict(head_dim=head_dim, scale=scale, bias=bias)
        self.attn_norm = make_norm(hidden_size, eps=eps)
        self.attn = Attention(hidden_size, num_heads, attention_dropout, causal=causal, **heads)
        self.cross_norm = make_norm(hidden_size, eps=eps) if cross else None
        self.cross = Attention(hidden_size, num_heads, attention_dropout, cross=True, **heads) if cross else None
        self.ffn_norm = make_norm(hidden_size, eps=eps)
        self.ffn = FeedForward(hidden_size, intermediate_size, activation, dropout, bias=bias, gated=gated)
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        *,
        position_bias: torch.Tensor | None = None,
        memory: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
        cache: LayerCache | None = None,
    ) -> torch.Tensor:
        """x (B, T, H) → (B, T, H); memory (B, S, H) and memory_mask bool (B, 1, 1, S) feed
        the cross-attention. Masks and bias as in `Attention`."""
        h = self.attn(self.attn_norm(x), attn_mask, position_bias=position_bias,
                      cache=cache.self_attn if cache else None)
        x = x + self.drop(h)
        if self.cross is not None:
            h = self.cross(self.cross_norm(x), memory_mask, memory=memory,
                           cache=cache.cross_attn if cache else None)
            x = x + self.drop(h)
        return x + self.ffn(self.ffn_norm(x))  # ffn applies its own output dropout


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
        self.attn = Attention(hidden_size, num_heads, attention_dropout)
        self.attn_drop = nn.Dropout(dropout)
        self.attn_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.ffn = FeedForward(hidden_size, intermediate_size, activation, dropout)
        self.ffn_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)

    def forward(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        unpadding: Unpadding | None = None,
    ) -> torch.Tensor:
        """x (B, T, H) → (B, T, H); with `unpadding`, x is the flat (N, H) of real tokens."""
        if unpadding is not None:
            h = self.attn.forward_unpadded(x, unpadding)  # (N, H)
        else:
            h = self.attn(x, attn_mask)  # (B, T, H)
        x = self.attn_norm(x + self.attn_drop(h))
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
