"""The GPT-2 decoder: a causal language model (its loss is objectives.causal_lm_loss).

`CausalLM` is learned token and position embeddings, a stack of pre-LayerNorm blocks with
causal self-attention (layers.PreNormBlock), a final LayerNorm and an output projection tied to
the token embeddings. Parameter names are ours; checkpoint/gpt2.py maps them to GPT-2's
(`transformer.h.0.attn.c_attn` …), so an exported model loads in Transformers unchanged.

Key choice: positions follow the attention mask (cumsum − 1, as Transformers' generate does), so
a left-padded batch of prompts gives each row the positions it would have alone, and one
`forward` serves training, a padded prompt and one-token decoding steps with KV caches
(models/generate.py). The cost: whenever padding is present, each attention call combines the
padding mask with a causal one, which rules out the fused causal kernel for that call.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from plmkit.config import ModelConfig
from plmkit.models.layers import KVCache, LayerCache, PreNormBlock, init_bert_weights


class CausalLM(nn.Module):
    """GPT-2: token + position embeddings → pre-LN causal blocks → LayerNorm → tied LM head."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.max_position = cfg.max_position
        self.eos_token_id = cfg.eos_token_id  # generation's default stop token
        self.vocab_size = cfg.vocab_size
        rows = cfg.padded_vocab_size  # ≥ vocab_size: aligned matmul shapes (cfg.vocab_multiple)
        self.word = nn.Embedding(rows, cfg.hidden_size)
        self.position = nn.Embedding(cfg.max_position, cfg.hidden_size)
        self.drop = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(
            PreNormBlock(
                cfg.hidden_size,
                cfg.num_heads,
                cfg.intermediate_size,
                cfg.activation,
                cfg.dropout,
                cfg.attention_dropout,
                norm="layer",
                eps=cfg.layer_norm_eps,
                bias=True,
                causal=True,
            )
            for _ in range(cfg.num_layers)
        )
        self.norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        # Untied models keep their own output matrix; tied ones project with self.word.weight.
        self.lm_head = (
            None
            if cfg.tie_word_embeddings
            else nn.Linear(cfg.hidden_size, rows, bias=False)
        )
        self.apply(lambda m: init_bert_weights(m, cfg.initializer_range))
        # GPT-2's scaled init: the two residual projections of each block shrink by √(2·layers),
        # so the residual stream's variance does not grow with depth.
        residual_std = cfg.initializer_range / math.sqrt(2 * cfg.num_layers)
        with torch.no_grad():
            for block in self.layers:
                block.attn.out.weight.normal_(0.0, residual_std)
                block.ffn.down.weight.normal_(0.0, residual_std)

    def new_cache(self) -> list[LayerCache]:
        """Empty KV caches, one per layer, for incremental decoding."""
        return [LayerCache(KVCache()) for _ in self.layers]

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        caches: list[LayerCache] | None = None,
    ) -> torch.Tensor:
        """input_ids (B, T) → logits (B, T, V).

        attention_mask (B, S), 1 = token / 0 = padding, covers every key: the S − T cached
        positions too. position_ids (B, T) default to the mask's running count (0 for pads), or
        to past, …, past + T − 1 without a mask. caches: from `new_cache`, extended in place.
        """
        B, T = input_ids.shape
        past = caches[0].self_attn.length if caches else 0
        if position_ids is None:
            # Checked on shapes, not values, so a compiled graph has no data-dependent branch.
            span = past + T if attention_mask is None else attention_mask.shape[1]
            if span > self.max_position:
                raise ValueError(
                    f"position {span - 1} is beyond max_position {self.max_position}"
                )
            if attention_mask is None:
                position_ids = torch.arange(past, past + T, device=input_ids.device)[None]  # (1, T)
            else:
                counts = attention_mask.long().cumsum(-1) - 1  # (B, S)
                position_ids = counts.masked_fill(attention_mask == 0, 0)[:, -T:]  # (B, T)
        elif position_ids.numel() and int(position_ids.max()) >= self.max_position:
            raise ValueError(
                f"position {int(position_ids.max())} is beyond max_position {self.max_position}"
            )
        mask = None
        if attention_mask is not None:
            mask = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, S): keys a query may see
        x = self.drop(self.word(input_ids) + self.position(position_ids))  # (B, T, H)
        for i, block in enumerate(self.layers):
            x = block(x, mask, cache=caches[i] if caches else None)
        x = self.norm(x)
        weight = self.word.weight if self.lm_head is None else self.lm_head.weight  # (V', H)
        return (x @ weight.T)[..., : self.vocab_size]  # (B, T, V): padding rows' columns dropped
