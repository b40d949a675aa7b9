"""`plmkit finetune task=ner`: tagged sentences + an encoder → a token classifier (NER, POS, ...).

Flat wiring, like the classifier's (stages/finetune.py hands over here): read and check the
tagged files (CoNLL columns or JSONL), fix the tag set from the training file, tokenize once
into sub-word windows, build `TokenClassifier` on the chosen encoder (a plmkit run, any Hugging
Face BERT directory, or random init), fit with the shared trainer, and score dev entities with
seqeval. `final/` is a Hugging Face `BertForTokenClassification` directory (id2label = the tags)
that also records how files are read, for `evaluate` and `predict`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from plmkit.checkpoint import load_into, save_model
from plmkit.config import FinetuneConfig, dump_yaml, to_dict
from plmkit.models.heads import TokenClassifier
from plmkit.runtime import atomic_write_text, pick_device, print0, seed_everything
from plmkit.stages.start import model_to_finetune, open_tokenizer, train_config
from plmkit.tasks.classification import LabelSet
from plmkit.tasks.metrics import markdown_table
from plmkit.tasks.sampling import SampledBatches
from plmkit.tasks.tagged import read_tagged_file
from plmkit.tasks.tokens import (
    collate_tagged,
    encode_tagged,
    ner_metrics,
    predict_tags,
    tag_label_set,
    token_classification_loss,
)
from plmkit.text.tokenizer import special_ids
from plmkit.train.state import check_fresh_output
from plmkit.train.trainer import fit

ARCHITECTURE = "BertForTokenClassification"


def run(cfg: FinetuneConfig) -> dict[str, Any]:
    """Fine-tune a token classifier per `cfg`; returns {"dev": metrics, "steps", "train_time_s"}."""
    run_dir = Path(cfg.output)
    check_fresh_output(run_dir, resume=False)
    init_dir, tokenizer_dir, tokenizer = open_tokenizer(cfg)

    train = read_tagged_file(cfg.train_file, cfg.tags, limit=cfg.limit_train)
    dev = read_tagged_file(cfg.dev_file, cfg.tags) if cfg.dev_file else None
    scheme = cfg.tags.model_scheme or cfg.tags.scheme
    labels = LabelSet(cfg.labels) if cfg.labels else tag_label_set(train, scheme)
    train_set = encode_tagged(tokenizer, train, cfg.max_length, labels)
    dev_set = encode_tagged(tokenizer, dev, cfg.max_length, labels) if dev else None

    checkpoint, model_cfg = model_to_finetune(cfg, tokenizer, init_dir, "bert",
                                              pad_token_id=special_ids(tokenizer).pad)
    seed_everything(cfg.train.seed)
    model = TokenClassifier(model_cfg, len(labels))
    if checkpoint:
        load_into(model, checkpoint, architecture=ARCHITECTURE)

    train_cfg = train_config(cfg, len(train_set))
    batches = SampledBatches(train_set, train_cfg.batch_size, collate_tagged, seed=train_cfg.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", dump_yaml(cfg))
    result = fit(model, batches, token_classification_loss, train_cfg, run_dir)

    dev_metrics: dict[str, float] = {}
    if dev_set is not None:
        predicted = predict_tags(model, dev_set, labels, 64, pick_device(train_cfg.device))
        dev_metrics = ner_metrics([list(s.tags) for s in dev], predicted)
    extra = {**labels.to_config(), "plmkit_task": {
        "task": "ner", "max_length": cfg.max_length, "scheme": scheme, "tags": to_dict(cfg.tags)}}
    save_model(model, model_cfg, run_dir / "final", ARCHITECTURE, extra_config=extra,
               tokenizer_dir=tokenizer_dir)
    summary = {"dev": dev_metrics, "steps": result.steps, "train_time_s": result.train_time_s}
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2))
    if dev_metrics:
        rows = [{"split": "dev", **{k: dev_metrics[k] for k in ("precision", "recall", "f1")}}]
        atomic_write_text(run_dir / "results.md", markdown_table(rows, list(rows[0])))
    print0(f"finetune: {result.steps} steps in {result.train_time_s:.0f}s; dev "
           + ", ".join(f"{k} {v:.4f}" for k, v in dev_metrics.items() if k in ("precision", "recall", "f1")))
    return summary
