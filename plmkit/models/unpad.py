"""No compute on padding: an encoder runs on its real tokens only, (N, H) instead of (B, T, H).

A batch of sentences is padded to its longest row; every Linear, LayerNorm and feed-forward
of a BERT layer is per-token, so the padded positions cost as much as real ones while their
results are thrown away. `Unpadding` records where the real tokens sit; the encoder gathers
them once after the embeddings, runs every layer on the flat (N, H) tensor, and scatters the
result back to (B, T, H) at the end (padding rows come back as zeros).

Attention is the one place rows must be kept apart. On CUDA in half precision, without
attention dropout, `torch.nn.attention.varlen.varlen_attn` (flash attention over
concatenated sequences, delimited by `cu_seqlens`) works on the flat layout directly. Anywhere
else the fused q/k/v are scattered back to (B, T, 3·inner) for `scaled_dot_product_attention`
with the padding mask and gathered again after it: the projections still skip the padding,
only the attention itself does not. The cost of the whole path is two gathers and one
scatter per layer, and a data-dependent N (one host sync per batch to find it; under
`torch.compile` see runtime.compiling.compile_step, which traces it instead of breaking the graph).

Rows must be right-padded (their tokens first), as every plmkit collate function makes them.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

try:  # PyTorch ≥ 2.10; older versions take the padded fallback everywhere
    from torch.nn.attention.varlen import varlen_attn
except ImportError:
    varlen_attn = None


class Unpadding(NamedTuple):
    """Where the N real tokens of a (B, T) batch are."""

    indices: torch.Tensor  # (N,) flat positions of the real tokens in the B·T grid
    cu_seqlens: torch.Tensor  # (B + 1,) int32: row b's tokens are [cu[b], cu[b+1]) of N
    max_seqlen: int  # a bound on the longest row: the padded width T, read from the shape
    batch: int
    seq_len: int
    key_mask: torch.Tensor  # (B, 1, 1, T) bool: the padding mask of the padded fallback


def unpadding(attention_mask: torch.Tensor) -> Unpadding:
    """attention_mask (B, T), 1 = token / 0 = padding (right-padded rows) → Unpadding."""
    B, T = attention_mask.shape
    mask = attention_mask.bool()
    lengths = mask.sum(1, dtype=torch.int32)  # (B,)
    return Unpadding(
        indices=mask.reshape(-1).nonzero().squeeze(1),  # (N,)
        cu_seqlens=F.pad(lengths.cumsum(0, dtype=torch.int32), (1, 0)),  # (B + 1,)
        # The width, not lengths.max(): no host sync, no data-dependent int in a compiled graph;
        # batches are padded to their longest row, so the bound is tight.
        max_seqlen=T,
        batch=B,
        seq_len=T,
        key_mask=mask[:, None, None, :],
    )


def unpad(x: torch.Tensor, u: Unpadding) -> torch.Tensor:
    """x (B, T, ...) → (N, ...): the real tokens, row after row."""
    return x.reshape(u.batch * u.seq_len, *x.shape[2:]).index_select(0, u.indices)


def repad(x: torch.Tensor, u: Unpadding) -> torch.Tensor:
    """x (N, ...) → (B, T, ...), zeros at the padding."""
    out = x.new_zeros(u.batch * u.seq_len, *x.shape[1:])
    out = out.index_copy(0, u.indices, x)  # out of place: autograd scatters the gradient back
    return out.view(u.batch, u.seq_len, *x.shape[1:])


def use_varlen_kernel(x: torch.Tensor, dropout_p: float) -> bool:
    """True where flash varlen attention applies: CUDA, fp16/bf16, no attention dropout."""
    half = x.dtype in (torch.float16, torch.bfloat16)
    return varlen_attn is not None and x.is_cuda and half and dropout_p == 0.0


def varlen_attention(
    qkv: torch.Tensor,
    u: Unpadding,
    num_heads: int,
    head_dim: int,
    *,
    dropout_p: float = 0.0,
    scale: float | None = None,
) -> torch.Tensor:
    """Bidirectional attention within each row of a flat batch: qkv (N, 3·nh·hs) → (N, nh·hs)."""
    N = qkv.shape[0]
    inner = num_heads * head_dim
    if use_varlen_kernel(qkv, dropout_p):
        q, k, v = qkv.view(N, 3, num_heads, head_dim).unbind(1)  # each (N, nh, hs)
        y = varlen_attn(
            q, k, v, u.cu_seqlens, u.cu_seqlens, u.max_seqlen, u.max_seqlen, scale=scale
        )
        return y.reshape(N, inner)  # (N, nh·hs)
    padded = repad(qkv, u)  # (B, T, 3·nh·hs)
    B, T = u.batch, u.seq_len
    q, k, v = (
        t.view(B, T, num_heads, head_dim).transpose(1, 2) for t in padded.split(inner, dim=-1)
    )  # each (B, nh, T, hs)
    y = F.scaled_dot_product_attention(
        q, k, v, attn_mask=u.key_mask, dropout_p=dropout_p, scale=scale
    )
    return unpad(y.transpose(1, 2).reshape(B, T, inner), u)  # (N, nh·hs)
