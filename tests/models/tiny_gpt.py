"""A tiny random GPT-2 built by Transformers, and the same weights in our CausalLM.

The weights are moved well off their init (std 0.2 noise), so next-token distributions are
peaked and greedy and beam search have no near-ties for float noise to flip.
"""

from __future__ import annotations

from pathlib import Path

import torch

from plmkit.checkpoint import load_into, read_checkpoint
from plmkit.models.decoder import CausalLM

VOCAB = 300
BOS, EOS = 1, 2


def hf_gpt2(seed: int = 0, **config: object) -> torch.nn.Module:
    """A perturbed random `GPT2LMHeadModel` (eager attention, eval mode)."""
    import transformers

    settings = dict(
        vocab_size=VOCAB,
        n_embd=64,
        n_layer=2,
        n_head=4,
        n_positions=96,
        bos_token_id=BOS,
        eos_token_id=EOS,
    )
    settings.update(config)
    torch.manual_seed(seed)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(**settings))
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.2 * torch.randn_like(param))
    return model.eval()


def ours_from(hf: torch.nn.Module, directory: Path) -> CausalLM:
    """Our CausalLM holding `hf`'s weights, through a saved Hugging Face directory."""
    hf.save_pretrained(directory)
    ckpt = read_checkpoint(directory)
    model = CausalLM(ckpt.cfg).eval()
    load_into(model, ckpt, require_heads=True)
    return model


def left_padded(
    lengths: list[int], seed: int = 0, pad: int = EOS
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random prompts of `lengths`, left-padded: ids (B, T) and attention mask (B, T)."""
    gen = torch.Generator().manual_seed(seed)
    T = max(lengths)
    ids = torch.full((len(lengths), T), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, T - n :] = torch.randint(3, VOCAB, (n,), generator=gen)
        mask[row, T - n :] = 1
    return ids, mask
