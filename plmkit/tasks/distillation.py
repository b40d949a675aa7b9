"""Knowledge distillation: a student learns a fine-tuned teacher's outputs and the gold labels.

loss = alpha · T² · KL(softmax(teacher / T) ‖ softmax(student / T)) + (1 − alpha) · CE(student, gold)
(Hinton et al., 2015: the T² keeps the soft term's gradients on the scale of the hard one's).
Written once for every family whose network returns logits per row (B, C: classifiers, pairs) or
per token (B, T, C: taggers, where only the labelled positions count, as in fine-tuning); for
regression (C = 1) both terms are mean squared errors, against the teacher's score and the
gold one. The teacher runs in eval mode without gradients on the student's own batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from plmkit.tasks.ner.features import IGNORE
from plmkit.tasks.sampling import INPUT_KEYS


def distillation_loss(teacher: nn.Module, temperature: float, alpha: float):
    """The trainer's loss function: (student, batch) → (loss, {"kl", "ce", "agree"})."""
    teacher.eval().requires_grad_(False)

    def loss_fn(student: nn.Module, batch: dict[str, torch.Tensor]):
        inputs = [batch[key] for key in INPUT_KEYS]
        with torch.no_grad():
            soft = teacher(*inputs).float()
        logits = student(*inputs).float()
        labels = batch["labels"]
        if logits.dim() == 3:  # per token: keep the labelled positions, (N, C)
            scored = labels != IGNORE
            logits, soft, labels = logits[scored], soft[scored], labels[scored]
        if labels.is_floating_point():  # regression: one output per row
            hard = F.mse_loss(logits.squeeze(-1), labels.float())
            kl = F.mse_loss(logits, soft)
            return alpha * kl + (1 - alpha) * hard, {"soft": kl.item(), "hard": hard.item()}
        t = temperature
        kl = F.kl_div(F.log_softmax(logits / t, dim=-1), F.log_softmax(soft / t, dim=-1),
                      reduction="batchmean", log_target=True) * t * t
        hard = F.cross_entropy(logits, labels)
        agree = (logits.argmax(-1) == soft.argmax(-1)).float().mean().item()
        return alpha * kl + (1 - alpha) * hard, {"soft": kl.item(), "hard": hard.item(),
                                                 "agree": agree}

    return loss_fn
