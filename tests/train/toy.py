"""A throwaway learning problem for the trainer's tests, and a script that trains on it.

The task: classify 8-d Gaussian points by which of 4 fixed random directions they lie closest
to. The network is small (Linear → GELU → LayerNorm → Dropout → Linear) but has every kind of
parameter the optimizer groups care about and dropout to exercise the RNG. As a script it
trains into a run directory, so a test can SIGKILL it and resume it:

    python tests/train/toy.py RUN_DIR --steps 400 --save-every 10 [--resume]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn

from plmkit.config import TrainConfig
from plmkit.train.trainer import fit

DIM, CLASSES, ROWS = 8, 4, 4096


class ToyNet(nn.Module):
    """A two-layer classifier with a norm, a bias everywhere and dropout."""

    def __init__(self, hidden: int = 32, dropout: float = 0.1) -> None:
        super().__init__()
        self.proj = nn.Linear(DIM, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.norm(F.gelu(self.proj(x)))))  # (B, CLASSES)


class ToyBatches:
    """Consecutive slices of a fixed synthetic data set; the cursor is the row position."""

    def __init__(self, batch_size: int, *, tokens: bool = False, crash_at: int = -1) -> None:
        g = torch.Generator().manual_seed(1234)
        directions = torch.randn(DIM, CLASSES, generator=g)
        self.x = torch.randn(ROWS, DIM, generator=g)
        self.y = (self.x @ directions).argmax(-1)
        self.batch_size, self.tokens, self.crash_at = batch_size, tokens, crash_at
        self.position = 0
        self.progress: list[float] = []

    def next_batch(self, progress: float) -> dict[str, torch.Tensor]:
        if self.position // self.batch_size == self.crash_at:
            raise RuntimeError("simulated crash")
        self.progress.append(progress)
        rows = torch.arange(self.position, self.position + self.batch_size) % ROWS
        self.position += self.batch_size
        batch = {"x": self.x[rows], "y": self.y[rows]}
        if self.tokens:
            batch["attention_mask"] = torch.ones(self.batch_size, 5, dtype=torch.long)
        return batch

    def state_dict(self) -> dict:
        return {"position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.position = state["position"]


def toy_loss(
    model: nn.Module, batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, dict[str, float]]:
    logits = model(batch["x"])
    accuracy = (logits.argmax(-1) == batch["y"]).float().mean().item()
    return F.cross_entropy(logits, batch["y"]), {"acc": accuracy}


def toy_config(**overrides: object) -> TrainConfig:
    """Settings that learn the toy task in a few dozen steps, quietly, on one CPU thread."""
    base = dict(lr=1e-2, max_steps=20, batch_size=16, warmup_fraction=0.1, log_every=5, threads=1)
    return TrainConfig(**{**base, **overrides})  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--save-every", type=int, default=10)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    cfg = toy_config(max_steps=args.steps, save_every=args.save_every, log_every=7)
    torch.manual_seed(0)
    fit(ToyNet(), ToyBatches(cfg.batch_size), toy_loss, cfg, args.run_dir, resume=args.resume)


if __name__ == "__main__":
    main()
