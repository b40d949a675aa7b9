"""The T5 encoder-decoder: a bidirectional encoder, a causal decoder that attends to it, one LM head.

Both stacks are pre-norm blocks from layers.py with RMSNorm, no biases and unscaled attention
(T5's initialisation absorbs the 1/√d). Positions enter only as a learned bias on the attention
scores, one value per head for each bucket of relative distance (bidirectional buckets in the
encoder, causal ones in the decoder). Each stack owns one bias table and computes the bias once
per forward; every layer of the stack adds the same (1, nh, T, S) tensor. The input embedding
is shared by encoder, decoder and (when tied) the output projection, which then scales the
decoder's output by hidden_size^-0.5 as T5 v1.0 does. Dropout falls where T5 puts it (inputs,
each sub-layer's output, attention weights, the final norm's output) except inside the
feed-forward, after the activation, where PreNormBlock has none.

Key choice: the bias tables live on the stacks (`encoder.relative_bias`), not in their first
block as Transformers keeps them, so every block is the same `PreNormBlock` and the bias is
computed once per forward, outside the layers; the cost is one more renamed tensor in
checkpoint/t5.py. With caches, a decoder step finds its absolute position in the length of the
first layer's self-attention cache.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from plmkit.config import ModelConfig
from plmkit.models.layers import Attention, KVCache, LayerCache, PreNormBlock, padding_mask


def relative_position_bucket(
    relative_position: torch.Tensor, *, bidirectional: bool, num_buckets: int, max_distance: int
) -> torch.Tensor:
    """Key position − query position (long, any shape) → bucket ids in [0, num_buckets), same shape.

    Half of a direction's buckets hold the distances 0 … n/2 − 1 exactly; the other half grow
    logarithmically up to `max_distance`, beyond which all distances share the last bucket.
    Bidirectional: keys after the query get their own half of the buckets. Causal: keys after
    the query (masked anyway) fall into bucket 0.
    """
    if bidirectional:
        num_buckets //= 2
        side = (relative_position > 0).long() * num_buckets  # keys to the right: upper half
        distance = relative_position.abs()
    else:
        side = torch.zeros_like(relative_position)
        distance = (-relative_position).clamp(min=0)  # how far back the key is
    exact = num_buckets // 2
    # exact + ⌊log(d / exact) / log(max_distance / exact) · (buckets − exact)⌋, for d ≥ exact
    ratio = torch.log(distance.float().clamp(min=1) / exact) / math.log(max_distance / exact)
    far = (exact + (ratio * (num_buckets - exact)).long()).clamp(max=num_buckets - 1)
    return side + torch.where(distance < exact, distance, far)


def shift_right(labels: torch.Tensor, pad_token_id: int) -> torch.Tensor:
    """Targets (B, T) → decoder inputs (B, T): T5 starts with the pad id; -100 labels become pad."""
    start = torch.full_like(labels[:, :1], pad_token_id)  # (B, 1)
    shifted = torch.cat([start, labels[:, :-1]], dim=1)  # (B, T)
    return shifted.masked_fill(shifted == -100, pad_token_id)


class Stack(nn.Module):
    """T5 blocks sharing one relative-position bias, between input dropout and a final RMSNorm."""

    def __init__(
        self,
        layers: list[PreNormBlock],
        *,
        hidden_size: int,
        num_heads: int,
        num_buckets: int,
        max_distance: int,
        eps: float,
        dropout: float,
        causal: bool,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.relative_bias = nn.Embedding(num_buckets, num_heads)  # (buckets, nh)
        self.norm = nn.RMSNorm(hidden_size, eps=eps)
        self.drop = nn.Dropout(dropout)
        self.causal = causal
        self.max_distance = max_distance

    def position_bias(self, query_len: int, key_len: int, past: int = 0) -> torch.Tensor:
        """The bias every layer adds to its scores: (1, nh, T, S); queries sit at past … past+T−1."""
        device = self.relative_bias.weight.device
        query = torch.arange(past, past + query_len, device=device)[:, None]  # (T, 1)
        key = torch.arange(key_len, device=device)[None, :]  # (1, S)
        buckets = relative_position_bucket(
            key - query,
            bidirectional=not self.causal,
            num_buckets=self.relative_bias.num_embeddings,
            max_distance=self.max_distance,
        )  # (T, S)
        return self.relative_bias(buckets).permute(2, 0, 1).unsqueeze(0)  # (1, nh, T, S)

    def forward(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        *,
        memory: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
        caches: list[LayerCache] | None = None,
    ) -> torch.Tensor:
        """Embedded tokens x (B, T, H) → (B, T, H). Masks are bool (B, 1, 1, S), True = attend;
        with `caches`, x holds the T tokens after those already cached."""
        past = caches[0].self_attn.length if caches else 0
        bias = self.position_bias(x.shape[1], past + x.shape[1], past)  # (1, nh, T, past + T)
        x = self.drop(x)
        for i, layer in enumerate(self.layers):
            x = layer(
                x,
                attn_mask,
                position_bias=bias,
                memory=memory,
                memory_mask=memory_mask,
                cache=caches[i] if caches else None,
            )
        return self.drop(self.norm(x))


class Seq2SeqLM(nn.Module):
    """T5: shared embedding → encoder stack → decoder stack (cross-attending) → vocabulary logits."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        block = functools.partial(
            PreNormBlock,
            cfg.hidden_size,
            cfg.num_heads,
            cfg.intermediate_size,
            cfg.activation,
            cfg.dropout,
            cfg.attention_dropout,
            norm="rms",
            eps=cfg.layer_norm_eps,
            bias=False,
            head_dim=cfg.head_dim,
            scale=1.0,
            gated=cfg.gated,
        )
        stack = functools.partial(
            Stack,
            hidden_size=cfg.hidden_size,
            num_heads=cfg.num_heads,
            num_buckets=cfg.relative_buckets,
            max_distance=cfg.relative_max_distance,
            eps=cfg.layer_norm_eps,
            dropout=cfg.dropout,
        )
        num_decoder_layers = cfg.num_decoder_layers or cfg.num_layers
        self.embed = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.encoder = stack([block() for _ in range(cfg.num_layers)], causal=False)
        self.decoder = stack(
            [block(causal=True, cross=True) for _ in range(num_decoder_layers)], causal=True
        )
        tied = cfg.tie_word_embeddings
        self.lm_head = None if tied else nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        self.output_scale = cfg.hidden_size**-0.5 if tied else 1.0
        self.pad_token_id = cfg.pad_token_id  # also the decoder's start token, as in T5
        self.eos_token_id = cfg.eos_token_id
        _init_t5_weights(self, cfg.hidden_size)

    def encode(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """input_ids (B, S), attention_mask (B, S) 1 = token / 0 = pad → memory (B, S, H)."""
        return self.encoder(self.embed(input_ids), padding_mask(attention_mask))

    def decode(
        self,
        decoder_ids: torch.Tensor,
        memory: torch.Tensor,
        memory_mask: torch.Tensor | None = None,
        caches: list[LayerCache] | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """decoder_ids (B, T) over memory (B, S, H), memory_mask (B, S) → logits (B, T, V).

        With `caches` (from `new_cache`), decoder_ids are the T tokens after those already
        cached, and decoder_attention_mask (if any) covers all past + T positions.
        """
        h = self.decoder(
            self.embed(decoder_ids),
            padding_mask(decoder_attention_mask),
            memory=memory,
            memory_mask=padding_mask(memory_mask),
            caches=caches,
        )  # (B, T, H)
        h = h * self.output_scale
        weight = self.embed.weight if self.lm_head is None else self.lm_head.weight
        return F.linear(h, weight)  # (B, T, V)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        decoder_input_ids: torch.Tensor,
        decoder_attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Teacher forcing: input_ids (B, S), decoder_input_ids (B, T) → logits (B, T, V)."""
        memory = self.encode(input_ids, attention_mask)
        return self.decode(
            decoder_input_ids, memory, attention_mask, decoder_attention_mask=decoder_attention_mask
        )

    def new_cache(self) -> list[LayerCache]:
        """Empty caches for incremental decoding: per decoder layer, self- and cross-attention."""
        return [LayerCache(KVCache(), KVCache(static=True)) for _ in self.decoder.layers]


@torch.no_grad()
def _init_t5_weights(model: Seq2SeqLM, hidden_size: int) -> None:
    """T5's initialisation: every projection N(0, 1/fan_in), queries another 1/head_dim (the score
    scaling T5 leaves out), the shared embedding N(0, 1), bias tables N(0, 1/H), norms 1."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            module.weight.normal_(0.0, module.in_features**-0.5)
        elif isinstance(module, nn.Embedding):
            module.weight.normal_(0.0, 1.0 if module is model.embed else hidden_size**-0.5)
        elif isinstance(module, nn.RMSNorm):
            module.weight.fill_(1.0)
    for module in model.modules():
        if isinstance(module, Attention):
            inner = module.num_heads * module.head_dim
            query = module.q.weight if module.cross else module.qkv.weight[:inner]  # (nh·hs, H)
            query.normal_(0.0, (hidden_size * module.head_dim) ** -0.5)
