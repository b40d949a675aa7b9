"""`plmkit finetune task=qa`: SQuAD / CMRC 2018 JSON + an encoder → an extractive QA model.

Flat wiring, like the classifier's (stages/finetune.py hands over here): read the question
files (answers whose offsets do not match their text are counted and reported, never dropped
silently), cut long contexts into overlapping windows, build `SpanExtractor` on the chosen
encoder, fit with the shared trainer, then answer the dev questions (n-best, no-answer for v2)
and score them with the official SQuAD or CMRC 2018 EM / F1 (tasks/qa/answers.py, the path that
`evaluate` and `predict` take too). `final/` is a Hugging Face `BertForQuestionAnswering`
directory that records the QA settings for `evaluate` and `predict`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from plmkit.checkpoint import load_into, save_model
from plmkit.config import FinetuneConfig, to_dict
from plmkit.models.heads import SpanExtractor
from plmkit.runtime.devices import pick_device, seed_everything
from plmkit.runtime.files import atomic_write_text
from plmkit.runtime.processes import is_main_process
from plmkit.stages.start import fit_rows, model_to_finetune, open_tokenizer, report
from plmkit.tasks.qa.answers import choose_metric, read_questions, score
from plmkit.tasks.qa.features import collate_qa, encode_qa, span_loss
from plmkit.text.tokenizer import special_ids
from plmkit.train.state import check_fresh_output

ARCHITECTURE = "BertForQuestionAnswering"


def run(cfg: FinetuneConfig) -> dict[str, Any]:
    """Fine-tune an extractive QA model per `cfg`; returns {"dev": metrics, "steps", "train_time_s"}."""
    run_dir = Path(cfg.output)
    check_fresh_output(run_dir, resume=cfg.resume)
    init_dir, tokenizer_dir, tokenizer = open_tokenizer(cfg)

    train = read_questions(cfg.train_file, limit=cfg.limit_train)
    dev = read_questions(cfg.dev_file) if cfg.dev_file else None
    metric = choose_metric(cfg.qa, train)
    allow_null = cfg.qa.version_2 if cfg.qa.version_2 is not None else any(ex.impossible for ex in train)
    train_set = encode_qa(tokenizer, train, max_length=cfg.max_length, stride=cfg.qa.stride,
                          max_question_length=cfg.qa.max_question_length, training=True)

    checkpoint, model_cfg = model_to_finetune(cfg, tokenizer, init_dir, "bert",
                                              pad_token_id=special_ids(tokenizer).pad)
    seed_everything(cfg.train.seed)
    model = SpanExtractor(model_cfg)
    if checkpoint:
        load_into(model, checkpoint, architecture=ARCHITECTURE)

    result = fit_rows(model, train_set, collate_qa, span_loss, cfg, run_dir)
    if not is_main_process():  # rank 0 evaluates and writes
        return {"steps": result.steps, "train_time_s": result.train_time_s}

    dev_metrics: dict[str, float] = {}
    if dev:
        dev_metrics, predictions = score(model, tokenizer, dev, cfg.qa, cfg.max_length, metric,
                                         allow_null, pick_device(cfg.train.device))
        atomic_write_text(run_dir / "dev-predictions.json",
                          json.dumps(predictions, ensure_ascii=False, indent=1))
    qa = dataclasses.replace(cfg.qa, metric=metric, version_2=allow_null)
    extra = {"plmkit_task": {"task": "qa", "max_length": cfg.max_length, "qa": to_dict(qa)}}
    save_model(model, model_cfg, run_dir / "final", ARCHITECTURE, extra_config=extra,
               tokenizer_dir=tokenizer_dir)
    return report(run_dir, result, dev_metrics, shown=("em", "f1"), metric=metric)
