"""`plmkit finetune`: labelled table + encoder (pretrained or random) → a fine-tuned classifier.

Flat wiring: read and validate the data first (so a bad column fails in a second, not after
an epoch), build the classifier on the chosen encoder, fit with the shared trainer, score the
dev file, and write `final/` as a Hugging Face `BertForSequenceClassification` directory that
also records how its inputs are read (columns, max length, labels) for `evaluate` and `predict`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from plmkit.checkpoint import load_into, save_model
from plmkit.config import FinetuneConfig, to_dict
from plmkit.models.heads import SequenceClassifier
from plmkit.runtime.console import print0
from plmkit.runtime.devices import pick_device, seed_everything
from plmkit.runtime.errors import UserError
from plmkit.runtime.files import atomic_write_text
from plmkit.runtime.outputs import check_apart
from plmkit.runtime.processes import is_main_process
from plmkit.stages import finetune_matching, finetune_ner, finetune_qa, finetune_seq2seq
from plmkit.stages.start import fit_rows, model_to_finetune, open_tokenizer, report
from plmkit.tasks import sampling
from plmkit.tasks.classification.features import (
    LabelSet,
    classification_loss,
    collate_examples,
    encode_examples,
    evaluate_logits,
    predict_logits,
)
from plmkit.tasks.metrics import format_value, markdown_table, spread
from plmkit.tasks.tables import read_table
from plmkit.text.tokenizer import special_ids
from plmkit.train.state import check_fresh_output
from plmkit.train.trainer import check_train_config

TASKS = ("classification", "regression", "ner", "qa", "seq2seq", "matching")
POOLINGS = ("cls", "mean")


def check_config(cfg: FinetuneConfig) -> None:
    """The settings every task needs, checked before any file is read (suites call it up front)."""
    if cfg.task not in TASKS:
        raise UserError(f"finetune: task must be one of {', '.join(TASKS)}, got '{cfg.task}'")
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
    # max_steps 0 means "from epochs" here, which the trainer's own check would refuse.
    check_train_config(dataclasses.replace(cfg.train, max_steps=cfg.train.max_steps or 1))


def run(cfg: FinetuneConfig) -> dict[str, Any]:
    """Fine-tune per `cfg`; returns {"dev": metrics, "steps", "train_time_s"}."""
    check_config(cfg)
    check_apart(cfg.output, [cfg.init, cfg.tokenizer, cfg.train_file, cfg.dev_file])
    if cfg.seeds > 1:
        return run_seeds(cfg)
    if cfg.task == "seq2seq":
        return finetune_seq2seq.run(cfg)
    if cfg.task == "ner":
        return finetune_ner.run(cfg)
    if cfg.task == "qa":
        return finetune_qa.run(cfg)
    if cfg.task == "matching":
        return finetune_matching.run(cfg)
    run_dir = Path(cfg.output)
    check_fresh_output(run_dir, resume=cfg.resume)
    init_dir, tokenizer_dir, tokenizer = open_tokenizer(cfg)

    train = read_table(cfg.train_file, cfg.table, task=cfg.task, limit=cfg.limit_train)
    dev = read_table(cfg.dev_file, cfg.table, task=cfg.task) if cfg.dev_file else None
    labels = _label_set(cfg, train)
    train_set = encode_examples(tokenizer, train, cfg.max_length, labels, cfg.task)
    dev_set = encode_examples(tokenizer, dev, cfg.max_length, labels, cfg.task) if dev else None

    checkpoint, model_cfg = model_to_finetune(cfg, tokenizer, init_dir, "bert",
                                              pad_token_id=special_ids(tokenizer).pad)
    seed_everything(cfg.train.seed)
    num_labels = 1 if cfg.task == "regression" else len(labels.names)
    model = SequenceClassifier(model_cfg, num_labels, pooling=cfg.pooling)
    if checkpoint:
        load_into(model, checkpoint)
        if cfg.reinit_layers:
            if cfg.reinit_layers > model_cfg.num_layers:
                raise UserError(f"finetune: reinit_layers={cfg.reinit_layers} but the model has "
                                f"{model_cfg.num_layers} layers")
            model.encoder.reinit_top(cfg.reinit_layers, model_cfg.initializer_range)

    result = fit_rows(model, train_set, collate_examples, classification_loss, cfg, run_dir)
    if not is_main_process():  # rank 0 evaluates and writes
        return {"steps": result.steps, "train_time_s": result.train_time_s}

    dev_metrics: dict[str, float] = {}
    if dev_set is not None:
        logits = predict_logits(model, dev_set, 64, pick_device(cfg.train.device))
        dev_metrics = evaluate_logits(logits, dev_set, cfg.task, labels)
    save_model(model, model_cfg, run_dir / "final", "BertForSequenceClassification",
               extra_config=_head_config(cfg, labels), tokenizer_dir=tokenizer_dir)
    return report(run_dir, result, dev_metrics)


def run_seeds(cfg: FinetuneConfig) -> dict[str, Any]:
    """Fine-tune once per seed (train.seed + k) into OUTPUT/seed-k; summary.json holds every
    run and each dev metric's median, min and max (`dev` is the median), results.md the same.
    Seeds show how much of a difference between two settings is luck."""
    out = Path(cfg.output)
    check_fresh_output(out, resume=cfg.resume)
    runs = [run(dataclasses.replace(cfg, seeds=1, output=str(out / f"seed-{k}"),
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
    return summary


def _label_set(cfg: FinetuneConfig, train: list) -> LabelSet | None:
    if cfg.task == "regression":
        return None
    return LabelSet(cfg.labels) if cfg.labels else LabelSet.from_examples(train)


def steps_for_epochs(cfg: FinetuneConfig, num_examples: int) -> int:
    """Optimizer steps for `cfg.epochs` passes over `num_examples` rows."""
    return sampling.steps_for_epochs(cfg.epochs, num_examples, cfg.train.batch_size, cfg.train.grad_accum)


def _head_config(cfg: FinetuneConfig, labels: LabelSet | None) -> dict[str, Any]:
    """config.json fields for Transformers (labels, problem type) and for plmkit's reader."""
    extra: dict[str, Any] = {
        "problem_type": "regression" if cfg.task == "regression" else "single_label_classification",
        "plmkit_pooling": cfg.pooling,
        "plmkit_task": {"task": cfg.task, "max_length": cfg.max_length, "table": to_dict(cfg.table)},
    }
    if labels is not None:
        extra.update(labels.to_config())
    return extra
