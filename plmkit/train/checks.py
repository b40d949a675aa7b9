"""Training settings checked before any heavy work: every stage that trains calls this first.

Apart from the loop (trainer.py) so a stage can refuse a bad `train.*` field before it loads a
model or reads data, and the message names the dotted field.
"""

from __future__ import annotations

from plmkit.config import TrainConfig
from plmkit.runtime.errors import UserError
from plmkit.train.optim import SCHEDULES


def check_train_config(cfg: TrainConfig) -> None:
    """Reject settings the loop cannot run with, naming the field (stages call it up front)."""
    problems = [
        ("batch_size", cfg.batch_size < 1, f"must be ≥ 1, got {cfg.batch_size}"),
        ("lr", not cfg.lr > 0, f"must be > 0, got {cfg.lr}"),
        ("adam_beta1", not 0 <= cfg.adam_beta1 < 1, f"must be in [0, 1), got {cfg.adam_beta1}"),
        ("adam_beta2", not 0 <= cfg.adam_beta2 < 1, f"must be in [0, 1), got {cfg.adam_beta2}"),
        ("adam_eps", not cfg.adam_eps > 0, f"must be > 0, got {cfg.adam_eps}"),
        ("weight_decay", cfg.weight_decay < 0, f"must be ≥ 0, got {cfg.weight_decay}"),
        ("max_steps", cfg.max_steps < 0, f"must be ≥ 0, got {cfg.max_steps}"),
        ("max_time_s", cfg.max_time_s < 0, f"must be ≥ 0, got {cfg.max_time_s}"),
        ("max_steps", cfg.max_steps == 0 and cfg.max_time_s <= 0, "is 0: set it, or max_time_s"),
        ("grad_accum", cfg.grad_accum < 1, f"must be ≥ 1, got {cfg.grad_accum}"),
        ("warmup_fraction", not 0 <= cfg.warmup_fraction < 1, "must be in [0, 1)"),
        (
            "schedule",
            cfg.schedule not in SCHEDULES,
            f"'{cfg.schedule}': use {', '.join(SCHEDULES)}",
        ),
        ("clip_norm", cfg.clip_norm < 0, f"must be ≥ 0, got {cfg.clip_norm}"),
        ("eval_every", cfg.eval_every < 0, f"must be ≥ 0, got {cfg.eval_every}"),
        ("save_every", cfg.save_every < 0, f"must be ≥ 0, got {cfg.save_every}"),
        ("save_every_s", cfg.save_every_s < 0, f"must be ≥ 0, got {cfg.save_every_s}"),
        ("log_every", cfg.log_every < 0, f"must be ≥ 0, got {cfg.log_every}"),
        ("layer_decay", not 0 < cfg.layer_decay <= 1, f"must be in (0, 1], got {cfg.layer_decay}"),
        ("head_lr_scale", not cfg.head_lr_scale > 0, f"must be > 0, got {cfg.head_lr_scale}"),
        ("head_first", not 0 <= cfg.head_first < 1, f"must be in [0, 1), got {cfg.head_first}"),
        ("peak_flops", cfg.peak_flops is not None and not cfg.peak_flops > 0, "must be > 0"),
    ]
    for field, bad, message in problems:
        if bad:
            raise UserError(f"config train.{field}: {message}")
