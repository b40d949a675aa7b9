"""ELECTRA's objective (Clark et al., 2020): replaced-token detection, from token shards to loss.

Batches are MLM's: `ElectraBatches` wraps a `PretrainBatches` (NSP off), so examples and masking
(80/10/10, whole words when the masking asks for them) come from mlm.py's one routine. To each
batch it adds one uniform number per masked position, drawn from the same NumPy generator right
after the masking; models/electra.py samples the generator's replacement there by inverting its
CDF. So the wrapped source's generator state stays the whole data cursor, and a resumed run
replaces exactly the tokens an uninterrupted one would.

The loss is the paper's: the generator's MLM cross-entropy on the masked positions plus
λ (`disc_weight`, 50 in the paper) times the discriminator's binary cross-entropy over every real
token, padding excluded. The cost of ELECTRA against MLM at the same step count is the
generator's forward and backward (a quarter of the width by default) and the discriminator head
on every token.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from plmkit.objectives.mlm import PretrainBatches


class ElectraBatches:
    """MLM batches (no NSP) plus `replace_uniform`: one number in [0, 1) per masked position."""

    def __init__(self, source: PretrainBatches) -> None:
        if source.nsp:
            raise ValueError(
                "ELECTRA batches carry no NSP: build the PretrainBatches with nsp=False"
            )
        self.source = source

    # -- BatchSource protocol
    def next_batch(self, progress: float) -> dict[str, torch.Tensor]:
        """The wrapped source's batch, with the sampling numbers drawn from its generator."""
        batch = self.source.next_batch(progress)
        count = len(batch["mlm_positions"])
        batch["replace_uniform"] = torch.from_numpy(self.source.rng.random(count)).float()
        return batch

    def state_dict(self) -> dict:
        """The wrapped source's cursor: its generator drew the sampling numbers too."""
        return self.source.state_dict()

    def load_state_dict(self, state: dict) -> None:
        """Continue exactly where `state_dict` was taken."""
        self.source.load_state_dict(state)


def electra_loss(
    model: nn.Module, batch: dict[str, torch.Tensor], *, disc_weight: float = 50.0
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Generator MLM loss + disc_weight × discriminator BCE over the real tokens. Metrics stay
    on the device (0-dim tensors): no host sync per step; the log reads them."""
    out = model(
        batch["input_ids"],
        batch["attention_mask"],
        batch["token_type_ids"],
        batch["mlm_positions"],
        batch["mlm_labels"],
        batch["replace_uniform"],
    )
    mlm_loss = F.cross_entropy(out.mlm_logits.float(), batch["mlm_labels"])
    real = batch["attention_mask"].float()  # (B, T)
    tokens = real.sum().clamp(min=1.0)
    logits = out.disc_logits.float()
    per_token = F.binary_cross_entropy_with_logits(logits, out.replaced, reduction="none")
    disc_loss = (per_token * real).sum() / tokens
    correct = ((logits > 0).float() == out.replaced).float()
    metrics = {
        "mlm_loss": mlm_loss.detach(),
        "mlm_acc": (out.mlm_logits.argmax(-1) == batch["mlm_labels"]).float().mean(),
        "disc_loss": disc_loss.detach(),
        "disc_acc": (correct * real).sum() / tokens,
        "replaced": (out.replaced * real).sum() / tokens,  # share of tokens the generator changed
    }
    return mlm_loss + disc_weight * disc_loss, metrics
