"""`plmkit finetune`: labelled data + an encoder (pretrained or random) → a fine-tuned model,
for every task family through one path.

Flat wiring over the family's contract (tasks/contract.py): check the settings, read and
validate the data first (so a bad column fails in a second, not after an epoch), build the
family's head on the chosen encoder, fit with the shared trainer, score the dev file with the
same `score` that `evaluate` uses (its predictions written beside the scores), and write
`final/` as the family's Hugging Face architecture, with the settings plmkit reads back.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from plmkit.checkpoint import load_into, save_model
from plmkit.config import FinetuneConfig
from plmkit.runtime.console import print0
from plmkit.runtime.devices import pick_device, seed_everything
from plmkit.runtime.errors import UserError
from plmkit.runtime.files import atomic_write_text
from plmkit.runtime.outputs import check_apart
from plmkit.runtime.processes import is_main_process
from plmkit.stages.start import fit_rows, model_to_finetune, open_tokenizer, report
from plmkit.tasks import sampling
from plmkit.tasks.contract import TaskFamily, TaskModel
from plmkit.tasks.metrics import format_value, markdown_table, spread
from plmkit.tasks.registry import family_for_task
from plmkit.train.checks import check_train_config
from plmkit.train.state import check_fresh_output, close_run, open_run

POOLINGS = ("cls", "mean")


def check_config(cfg: FinetuneConfig) -> TaskFamily:
    """The settings every task needs, checked before any file is read (suites call it up front);
    returns the task's family."""
    family = family_for_task(cfg.task)
    if not cfg.train_file:
        raise UserError("finetune: train_file is required (e.g. train_file=train.tsv)")
    if cfg.pooling not in POOLINGS:
        raise UserError(f"finetune: pooling must be one of {', '.join(POOLINGS)}, got '{cfg.pooling}'")
    if not cfg.epochs > 0:
        raise UserError(f"finetune: epochs must be > 0, got {cfg.epochs}")
    if cfg.seeds < 1:
        raise UserError(f"finetune: seeds must be ≥ 1, got {cfg.seeds}")
    if cfg.reinit_layers < 0:
        raise UserError(f"finetune: reinit_layers must be ≥ 0, got {cfg.reinit_layers}")
    if cfg.eval_batch_size < 1:
        raise UserError(f"finetune: eval_batch_size must be ≥ 1, got {cfg.eval_batch_size}")
    # max_steps 0 means "from epochs" here, which the trainer's own check would refuse.
    check_train_config(dataclasses.replace(cfg.train, max_steps=cfg.train.max_steps or 1))
    return family


def run(cfg: FinetuneConfig) -> dict[str, Any]:
    """Fine-tune per `cfg`; returns {"dev": metrics, "steps", "train_time_s", ...}."""
    family = check_config(cfg)
    check_apart(cfg.output, [cfg.init, cfg.tokenizer, cfg.train_file, cfg.dev_file])
    if cfg.seeds > 1:
        return run_seeds(cfg)
    run_dir = Path(cfg.output)
    check_fresh_output(run_dir, resume=cfg.resume, overwrite=cfg.overwrite)
    init_dir, tokenizer_dir, tokenizer = open_tokenizer(cfg)

    settings = family.configure(cfg, tokenizer)
    train = family.read(cfg.train_file, settings, cfg.limit_train)
    if family.settle:
        settings = family.settle(settings, train)
    dev = family.read(cfg.dev_file, settings, 0) if cfg.dev_file else None
    if family.check:
        family.check(settings, train + (dev or []))
    train_set = family.encode(tokenizer, train, settings)

    checkpoint, model_cfg = model_to_finetune(cfg, tokenizer, init_dir, family.model_family,
                                              **family.random_init(tokenizer))
    seed_everything(cfg.train.seed)
    model = family.build(model_cfg, settings)
    if checkpoint:
        load_into(model, checkpoint, architecture=family.architecture)
        reinit_top(model, cfg, model_cfg.num_layers, model_cfg.initializer_range)

    result = fit_rows(model, train_set, family.collate, family.loss(settings), cfg, run_dir,
                      drop_last=family.drop_last)
    if not is_main_process():  # rank 0 evaluates and writes
        return {"steps": result.steps, "train_time_s": result.train_time_s}

    dev_metrics: dict[str, float] = {}
    if dev:
        trained = TaskModel(family, model.eval(), model_cfg, tokenizer, settings,
                            pick_device(cfg.train.device), run_dir)
        dev_metrics, predictions = family.score(trained, dev, cfg.eval_batch_size)
        name, text = family.dump(dev, predictions)
        atomic_write_text(run_dir / name, text)
    save_model(model, model_cfg, run_dir / "final", family.architecture,
               extra_config=family.settings_to_config(settings), tokenizer_dir=tokenizer_dir)
    extra = family.summary(settings, train_set) if family.summary else {}
    summary = report(run_dir, result, dev_metrics, shown=family.shown, **extra)
    close_run(run_dir)
    return summary


def reinit_top(model: Any, cfg: FinetuneConfig, num_layers: int, initializer_range: float) -> None:
    """Draw the top `cfg.reinit_layers` blocks afresh (a known help for small data sets)."""
    if not cfg.reinit_layers:
        return
    if cfg.reinit_layers > num_layers:
        raise UserError(f"finetune: reinit_layers={cfg.reinit_layers} but the model has "
                        f"{num_layers} layers")
    encoder = getattr(model, "encoder", None)
    if encoder is None or not hasattr(encoder, "reinit_top"):
        raise UserError(f"finetune: reinit_layers is for encoder tasks, not task={cfg.task}")
    encoder.reinit_top(cfg.reinit_layers, initializer_range)


def run_seeds(cfg: FinetuneConfig) -> dict[str, Any]:
    """Fine-tune once per seed (train.seed + k) into OUTPUT/seed-k; summary.json holds every
    run and each dev metric's median, min and max (`dev` is the median), results.md the same.
    Seeds show how much of a difference between two settings is luck."""
    out = Path(cfg.output)
    check_fresh_output(out, resume=cfg.resume, overwrite=cfg.overwrite)
    open_run(out)  # the seeds' folder is plmkit's (marked): a rerun may resume or replace it
    runs = [run(dataclasses.replace(cfg, seeds=1, output=str(out / f"seed-{k}"), overwrite=False,
                                    train=dataclasses.replace(cfg.train, seed=cfg.train.seed + k)))
            for k in range(cfg.seeds)]
    if not is_main_process():
        return runs[0]
    names = list(runs[0]["dev"])
    spreads = {name: spread([r["dev"][name] for r in runs]) for name in names}
    summary = {"dev": {name: s["median"] for name, s in spreads.items()}, "dev_spread": spreads,
               "seeds": [cfg.train.seed + k for k in range(cfg.seeds)], "runs": runs,
               "steps": runs[0]["steps"], "train_time_s": sum(r["train_time_s"] for r in runs)}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    if names:
        row = {"split": f"dev, median (min–max) of {cfg.seeds} seeds"}
        row.update({n: " ".join([format_value(n, s["median"]), f"({format_value(n, s['min'])}–"
                                 f"{format_value(n, s['max'])})"]) for n, s in spreads.items()})
        atomic_write_text(out / "results.md", markdown_table([row], list(row)))
    print0(f"finetune: {cfg.seeds} seeds; dev median " + ", ".join(
        f"{n} {s['median']:.4f} ({s['min']:.4f}–{s['max']:.4f})" for n, s in spreads.items()))
    close_run(out)
    return summary


def steps_for_epochs(cfg: FinetuneConfig, num_examples: int) -> int:
    """Optimizer steps for `cfg.epochs` passes over `num_examples` rows."""
    return sampling.steps_for_epochs(cfg.epochs, num_examples, cfg.train.batch_size, cfg.train.grad_accum)
