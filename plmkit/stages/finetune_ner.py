"""`plmkit finetune task=ner`: tagged sentences + an encoder → a token classifier (NER, POS, ...).

Flat wiring, like the classifier's (stages/finetune.py hands over here): read and check the
tagged files (CoNLL columns or JSONL), fix the tag set from the training file, tokenize once
into sub-word windows, build `TokenClassifier` on the chosen encoder (a plmkit run, any Hugging
Face BERT directory, or random init), fit with the shared trainer, and score dev entities with
seqeval. `final/` is a Hugging Face `BertForTokenClassification` directory (id2label = the tags)
that also records how files are read, for `evaluate` and `predict`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from plmkit.checkpoint import load_into, save_model
from plmkit.config import FinetuneConfig, to_dict
from plmkit.models.heads import TokenClassifier
from plmkit.runtime.devices import pick_device, seed_everything
from plmkit.runtime.processes import is_main_process
from plmkit.stages.start import fit_rows, model_to_finetune, open_tokenizer, report
from plmkit.tasks.classification.features import LabelSet
from plmkit.tasks.ner.data import read_tagged_file
from plmkit.tasks.ner.features import (
    collate_tagged,
    encode_tagged,
    ner_metrics,
    predict_tags,
    tag_label_set,
    token_classification_loss,
)
from plmkit.text.tokenizer import special_ids
from plmkit.train.state import check_fresh_output

ARCHITECTURE = "BertForTokenClassification"


def run(cfg: FinetuneConfig) -> dict[str, Any]:
    """Fine-tune a token classifier per `cfg`; returns {"dev": metrics, "steps", "train_time_s"}."""
    run_dir = Path(cfg.output)
    check_fresh_output(run_dir, resume=cfg.resume)
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

    result = fit_rows(model, train_set, collate_tagged, token_classification_loss, cfg, run_dir)
    if not is_main_process():  # rank 0 evaluates and writes
        return {"steps": result.steps, "train_time_s": result.train_time_s}

    dev_metrics: dict[str, float] = {}
    if dev_set is not None:
        predicted = predict_tags(model, dev_set, labels, 64, pick_device(cfg.train.device))
        dev_metrics = ner_metrics([list(s.tags) for s in dev], predicted)
    extra = {**labels.to_config(), "plmkit_task": {
        "task": "ner", "max_length": cfg.max_length, "scheme": scheme, "tags": to_dict(cfg.tags)}}
    save_model(model, model_cfg, run_dir / "final", ARCHITECTURE, extra_config=extra,
               tokenizer_dir=tokenizer_dir)
    return report(run_dir, result, dev_metrics, shown=("precision", "recall", "f1"))
