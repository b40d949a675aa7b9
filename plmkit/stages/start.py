"""What every `plmkit finetune` task shares: where it starts, how it trains, how it reports.

A fine-tuning run starts from a plmkit run, any Hugging Face directory of the right family,
or random init (then `tokenizer=DIR` is required and `model.*` gives the shape). Every task
stage asks the same two questions in the same order: which tokenizer (needed to encode the
data), then which model config and weights (checked against the tokenizer and the task).
Each then trains on its encoded rows through `fit_rows` and ends with `report`; what differs
between tasks (reading, encoding, the head, scoring, export) stays in the task's own stage.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence, Sized
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer
from torch import nn

from plmkit.checkpoint import Checkpoint, read_checkpoint, resolve_model_dir
from plmkit.config import (
    FinetuneConfig,
    ModelConfig,
    TrainConfig,
    check_model_config,
    dump_yaml,
    to_dict,
)
from plmkit.runtime.console import print0
from plmkit.runtime.errors import UserError
from plmkit.runtime.files import atomic_write_text
from plmkit.runtime.group import barrier, start_processes
from plmkit.runtime.processes import is_main_process, rank, world_size
from plmkit.tasks.metrics import markdown_table
from plmkit.tasks.sampling import SampledBatches, steps_for_epochs
from plmkit.text.tokenizer import load_tokenizer
from plmkit.train.state import open_run
from plmkit.train.trainer import FitResult, LossFn, fit

FAMILY_WORDS = {"bert": "an encoder (family bert)", "t5": "an encoder-decoder (family t5)",
                "gpt": "a decoder (family gpt)"}


def open_tokenizer(cfg: FinetuneConfig) -> tuple[Path | None, Path, Tokenizer]:
    """(the init model's directory or None, the tokenizer's directory, the tokenizer)."""
    init_dir = resolve_model_dir(cfg.init) if cfg.init else None
    tokenizer_dir = Path(cfg.tokenizer) if cfg.tokenizer else init_dir
    if tokenizer_dir is None:
        raise UserError("finetune: random init needs tokenizer=DIR (no init model to take it from)")
    return init_dir, tokenizer_dir, load_tokenizer(tokenizer_dir)


def model_to_finetune(cfg: FinetuneConfig, tokenizer: Tokenizer, init_dir: Path | None,
                      family: str, **random_init: Any) -> tuple[Checkpoint | None, ModelConfig]:
    """The checkpoint (None for random init) and the model config to build, checked.

    random_init: ModelConfig fields a random-init model takes from the tokenizer (pad id, ...).
    """
    if init_dir and cfg.model != ModelConfig():
        raise UserError(f"finetune: model.* settings shape a random-init model; with init={cfg.init} "
                        "the model's own config.json decides (drop the model.* overrides)")
    checkpoint = read_checkpoint(init_dir) if init_dir else None
    model_cfg = checkpoint.cfg if checkpoint else dataclasses.replace(
        cfg.model, family=family, vocab_size=tokenizer.get_vocab_size(), **random_init)
    if model_cfg.family != family:
        raise UserError(f"finetune: task {cfg.task} needs {FAMILY_WORDS[family]}; {cfg.init} is "
                        f"family '{model_cfg.family}'")
    if cfg.dropout is not None:  # e.g. pretrained without dropout, fine-tuned with it
        model_cfg = dataclasses.replace(model_cfg, dropout=cfg.dropout, attention_dropout=cfg.dropout)
    check_model_config(model_cfg)
    if model_cfg.embedding_size not in (0, model_cfg.hidden_size):  # before training, not at save
        raise UserError(f"finetune: {cfg.init} has embeddings {model_cfg.embedding_size} wide under "
                        f"layers {model_cfg.hidden_size} wide (ELECTRA-Small style); plmkit "
                        "fine-tunes encoders whose embeddings are as wide as their layers")
    if tokenizer.get_vocab_size() > model_cfg.vocab_size:
        raise UserError(f"finetune: the tokenizer has {tokenizer.get_vocab_size()} tokens but the "
                        f"model's vocabulary holds {model_cfg.vocab_size}: use the tokenizer the "
                        "model was trained with")
    if family != "t5" and cfg.max_length > model_cfg.max_position:  # T5's positions are relative
        raise UserError(f"finetune: max_length {cfg.max_length} exceeds the model's max_position "
                        f"{model_cfg.max_position}")
    return checkpoint, model_cfg


def train_config(cfg: FinetuneConfig, num_rows: int) -> TrainConfig:
    """cfg.train, with max_steps set from cfg.epochs over `num_rows` training rows when it is 0
    (under torchrun a step takes train.batch_size rows on each process)."""
    if cfg.train.max_steps:
        return cfg.train
    global_batch = cfg.train.batch_size * world_size()
    steps = steps_for_epochs(cfg.epochs, num_rows, global_batch, cfg.train.grad_accum)
    return dataclasses.replace(cfg.train, max_steps=steps)


def fit_rows(model: nn.Module, rows: Sized, collate: Callable[[Any, Any], dict],
             loss_fn: LossFn, cfg: FinetuneConfig, run_dir: Path, *,
             drop_last: bool = False) -> FitResult:
    """Train `model` on encoded `rows`, sampled into batches by `collate(rows, indices)` (full
    ones only with `drop_last`); the resolved config is saved in `run_dir` first. Under torchrun
    each process trains on its share of every batch; after this, the caller's work (evaluating,
    writing) is rank 0's alone (`is_main_process`)."""
    train_cfg = train_config(cfg, len(rows))
    batches = SampledBatches(rows, train_cfg.batch_size, collate, seed=train_cfg.seed,
                             drop_last=drop_last, rank=rank(), world=world_size())
    start_processes(train_cfg.device)
    barrier()  # every rank has checked the output directory before rank 0 writes into it
    # on resume the trainer checks the config against the saved one
    if is_main_process() and not (cfg.resume and (run_dir / "config.yaml").is_file()):
        open_run(run_dir)  # the run's lock and marker, before its first write
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.yaml", dump_yaml(cfg))
    return fit(model, batches, loss_fn, train_cfg, run_dir, resume=cfg.resume,
               run_config=run_config(cfg))


def run_config(cfg: FinetuneConfig) -> dict[str, Any]:
    """What a resumed run must share with the original; the run may have moved, so not `output`."""
    data = to_dict(cfg)
    for key in ("output", "resume", "seeds", "eval_batch_size"):  # none changes the weights
        data.pop(key, None)
    return data


def report(run_dir: Path, result: FitResult, dev_metrics: dict[str, float],
           shown: Sequence[str] = (), verb: str = "finetune", **extra: Any) -> dict[str, Any]:
    """Write summary.json (all dev metrics, steps, time, throughput, `extra`) and results.md
    (the `shown` metrics, default all), print the closing line; returns the summary."""
    summary = {"dev": dev_metrics, "steps": result.steps, "train_time_s": result.train_time_s,
               "throughput": result.throughput, **extra}
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2))
    headline = {k: dev_metrics[k] for k in shown} if shown and dev_metrics else dev_metrics
    if headline:
        rows = [{"split": "dev", **headline}]
        atomic_write_text(run_dir / "results.md", markdown_table(rows, list(rows[0])))
    print0(f"{verb}: {result.steps} steps in {result.train_time_s:.0f}s; dev "
           + ", ".join(f"{k} {v:.4f}" for k, v in headline.items()))
    return summary
