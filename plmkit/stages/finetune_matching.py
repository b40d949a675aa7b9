"""`plmkit finetune task=matching`: sentence pairs + an encoder → a sentence-embedding model.

Flat wiring, like the classifier's (stages/finetune.py hands over here): read both files and
check every label before any tokenizing, keep the training file's positive pairs (label "1",
or a score ≥ matching.min_score), tokenize them once, build `SentenceEmbedder` (cls or mean
pooling) on the chosen encoder, fit with the shared trainer and the in-batch contrastive loss,
and score the dev file by the cosine of its pairs (tasks/matching/embeddings.py `score_pairs`, the scorer
`plmkit evaluate` uses). Negative training rows are read but not used: in-batch negatives
need none, and the cost is that hard negatives a file may hold teach the model nothing.
`final/` is a Hugging Face `BertModel` directory (what sentence-transformers models are) that
records the pooling and columns in config.json for `evaluate`, `predict` and `load_embedder`.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from plmkit.checkpoint import load_into, save_model
from plmkit.config import FinetuneConfig, to_dict
from plmkit.models.heads import SentenceEmbedder
from plmkit.runtime.console import print0
from plmkit.runtime.devices import pick_device, seed_everything
from plmkit.runtime.errors import UserError
from plmkit.runtime.processes import is_main_process
from plmkit.stages.start import fit_rows, model_to_finetune, open_tokenizer, report
from plmkit.tasks.matching.embeddings import (
    collate_text_pairs,
    contrastive_loss,
    embed_texts,
    encode_text_pairs,
    gold_scores,
    positive_pairs,
    score_pairs,
)
from plmkit.tasks.tables import read_table
from plmkit.text.tokenizer import special_ids
from plmkit.train.state import check_fresh_output

ARCHITECTURE = "BertModel"


def run(cfg: FinetuneConfig) -> dict[str, Any]:
    """Fine-tune a sentence embedder per `cfg`; returns {"dev": metrics, "steps", "train_time_s"}."""
    if cfg.table.text_pair_column is None:
        raise UserError("finetune: task matching needs sentence pairs: set table.text_pair_column")
    if cfg.train.batch_size < 2:
        raise UserError(f"finetune: train.batch_size={cfg.train.batch_size}: in-batch negatives "
                        "need at least 2 pairs")
    loss_fn = contrastive_loss(cfg.matching.temperature)  # checks the temperature up front
    run_dir = Path(cfg.output)
    check_fresh_output(run_dir, resume=cfg.resume)
    init_dir, tokenizer_dir, tokenizer = open_tokenizer(cfg)

    train = read_table(cfg.train_file, cfg.table, limit=cfg.limit_train)
    dev = read_table(cfg.dev_file, cfg.table) if cfg.dev_file else None
    if cfg.matching.min_score is not None:
        gold_scores(train)  # a label that is not a number fails here, naming its line
    if dev:
        gold_scores(dev)
    pairs = positive_pairs(train, cfg.matching.min_score)
    train_set = encode_text_pairs(tokenizer, pairs, cfg.max_length)

    checkpoint, model_cfg = model_to_finetune(
        cfg, tokenizer, init_dir, "bert", pad_token_id=special_ids(tokenizer).pad
    )
    seed_everything(cfg.train.seed)
    model = SentenceEmbedder(model_cfg, pooling=cfg.pooling)
    if checkpoint:
        load_into(model, checkpoint, architecture=ARCHITECTURE)

    print0(f"finetune: {len(pairs)} positive pairs of {len(train)} rows")
    result = fit_rows(model, train_set, collate_text_pairs, loss_fn, cfg, run_dir, drop_last=True)
    if not is_main_process():  # rank 0 evaluates and writes
        return {"steps": result.steps, "train_time_s": result.train_time_s}

    dev_metrics: dict[str, float] = {}
    if dev:
        device = pick_device(cfg.train.device)
        embed = partial(embed_texts, model, tokenizer, max_length=cfg.max_length, device=device)
        dev_metrics = score_pairs(embed, dev)
    final, extra = run_dir / "final", _export_config(cfg)
    save_model(
        model, model_cfg, final, ARCHITECTURE, extra_config=extra, tokenizer_dir=tokenizer_dir
    )
    return report(run_dir, result, dev_metrics, positive_pairs=len(pairs))


def _export_config(cfg: FinetuneConfig) -> dict[str, Any]:
    """config.json fields that tell `evaluate`, `predict` and `load_embedder` how to embed."""
    table = to_dict(cfg.table)
    info = dict(task="matching", pooling=cfg.pooling, max_length=cfg.max_length, table=table)
    return {"plmkit_pooling": cfg.pooling, "plmkit_task": info}
