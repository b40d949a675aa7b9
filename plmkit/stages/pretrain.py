"""`plmkit pretrain`: token shards → a BERT pretrained with MLM (+ NSP) → a run directory.

Flat wiring, read top to bottom: open the shards and their tokenizer, build the model,
build the batch source and the held-out evaluation, fit, export `final/` in Hugging Face
layout (BertForPreTraining). The run directory holds the resolved config, metrics.jsonl,
checkpoints for `resume=true`, and `summary.json` with the numbers the demo table shows.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

from plmkit.checkpoint import load_into, read_checkpoint, resolve_model_dir, save_model
from plmkit.config import PretrainConfig, check_model_config, dump_yaml, to_dict
from plmkit.models.encoder import PretrainingModel
from plmkit.objectives import MaskingSpec, PretrainBatches, evaluate_pretraining, pretrain_loss
from plmkit.runtime import UserError, atomic_write_text, pick_device, print0, seed_everything
from plmkit.text.shards import ShardReader
from plmkit.text.tokenizer import continuation_mask, load_tokenizer, special_ids
from plmkit.train.state import check_fresh_output
from plmkit.train.trainer import check_train_config, fit

EVAL_BATCHES = 8


def run(cfg: PretrainConfig) -> dict[str, Any]:
    """Pretrain per `cfg`; returns the summary also written to OUTPUT/summary.json."""
    run_dir = Path(cfg.output)
    check_train_config(cfg.train)
    check_fresh_output(run_dir, cfg.resume)
    train_split = ShardReader(cfg.shards, "train")
    if train_split.num_sentences == 0:
        raise UserError(f"{cfg.shards}: the train split is empty (lower val_fraction in prepare?)")
    has_val = train_split.header["splits"].get("val", {}).get("sentences", 0) > 0
    val_split = ShardReader(cfg.shards, "val") if has_val else train_split
    if not has_val:
        print0(f"pretrain: {cfg.shards} has no val split; held-out metrics use train batches")
    tokenizer_dir = Path(cfg.shards) / "tokenizer"
    tokenizer = load_tokenizer(tokenizer_dir)
    special = special_ids(tokenizer)

    init = read_checkpoint(resolve_model_dir(cfg.init)) if cfg.init is not None else None
    model_cfg = init.cfg if init else dataclasses.replace(
        cfg.model, vocab_size=tokenizer.get_vocab_size(), pad_token_id=special.pad)
    if tokenizer.get_vocab_size() > model_cfg.vocab_size:
        raise UserError(f"init {cfg.init}: its vocabulary ({model_cfg.vocab_size}) is smaller than "
                        f"the shards' tokenizer's ({tokenizer.get_vocab_size()})")
    check_model_config(model_cfg)
    _check_objective(cfg, model_cfg.max_position)
    seed_everything(cfg.train.seed)
    model = PretrainingModel(model_cfg)
    if init is not None:
        load_into(model, init)

    masking = MaskingSpec(special, model_cfg.vocab_size, cfg.objective.mask_prob,
                          continuation_mask(tokenizer) if cfg.objective.whole_word else None)
    obj = cfg.objective
    batches = PretrainBatches(train_split, masking, batch_size=cfg.train.batch_size,
                              seq_len=obj.seq_len, short_seq_len=obj.short_seq_len,
                              short_seq_fraction=obj.short_seq_fraction, nsp=obj.nsp,
                              seed=cfg.train.seed)
    held_out = PretrainBatches(val_split, masking, batch_size=cfg.train.batch_size,
                               seq_len=obj.seq_len, nsp=obj.nsp, seed=cfg.train.seed + 1)
    eval_batches = [held_out.next_batch(1.0) for _ in range(EVAL_BATCHES)]
    device = pick_device(cfg.train.device)
    evaluate = lambda m: evaluate_pretraining(m, eval_batches, device)  # noqa: E731

    run_dir.mkdir(parents=True, exist_ok=True)
    start_file = run_dir / "start_metrics.json"
    if not cfg.resume:  # on resume the trainer first checks the config against the saved one
        atomic_write_text(run_dir / "config.yaml", dump_yaml(cfg))
        atomic_write_text(start_file, json.dumps(evaluate(model.to(device))))
    start = json.loads(start_file.read_text(encoding="utf-8")) if start_file.is_file() else {}
    print0(f"pretrain: {_count(model) / 1e6:.2f}M parameters, {train_split.num_tokens:,} tokens")
    result = fit(model, batches, pretrain_loss, cfg.train, run_dir, eval_fn=evaluate,
                 resume=cfg.resume, run_config=_run_config(cfg))
    atomic_write_text(run_dir / "config.yaml", dump_yaml(cfg))
    end = evaluate(model)
    save_model(model, model_cfg, run_dir / "final", "BertForPreTraining",
               tokenizer_dir=tokenizer_dir)
    summary = {"steps": result.steps, "train_time_s": result.train_time_s,
               "start": start, "end": end, "parameters": _count(model)}
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2))
    print0(f"pretrain: {result.steps} steps in {result.train_time_s:.0f}s, "
           f"val MLM loss {end['val_mlm_loss']:.3f}, acc {end['val_mlm_acc']:.3f} → {run_dir}/final")
    return summary


def _check_objective(cfg: PretrainConfig, max_position: int) -> None:
    obj = cfg.objective
    if obj.seq_len < 8:
        raise UserError(f"objective.seq_len must be at least 8, got {obj.seq_len}")
    if obj.seq_len > max_position:
        raise UserError(f"objective.seq_len {obj.seq_len} exceeds model.max_position {max_position}")
    if obj.short_seq_len and not 8 <= obj.short_seq_len <= obj.seq_len:
        raise UserError(f"objective.short_seq_len must be 0 or in [8, seq_len], got {obj.short_seq_len}")
    if not 0.0 <= obj.short_seq_fraction <= 1.0:
        raise UserError(f"objective.short_seq_fraction must be in [0, 1], got {obj.short_seq_fraction}")
    if not 0.0 < obj.mask_prob < 1.0:
        raise UserError(f"objective.mask_prob must be in (0, 1), got {obj.mask_prob}")


def _run_config(cfg: PretrainConfig) -> dict[str, Any]:
    """What a resumed run must share with the original; the run may have moved, so not `output`."""
    data = to_dict(cfg)
    data.pop("output")
    return data


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
