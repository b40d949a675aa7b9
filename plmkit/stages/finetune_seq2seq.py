"""`plmkit finetune task=seq2seq`: source/target table + a T5-style model → a fine-tuned seq2seq model.

Flat wiring, like the classifier's (stages/finetune.py hands over here): read and validate the
pairs, tokenize once, build the encoder-decoder (a plmkit span-corruption run, any Hugging Face
T5 directory, or random init), fit with the shared trainer on teacher-forced cross-entropy,
then decode the dev file and score it with BLEU, chrF and ROUGE. `final/` is a Hugging Face
`T5ForConditionalGeneration` directory that records how its inputs are read, for `evaluate`
and `generate`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from plmkit.checkpoint import load_into, save_model
from plmkit.config import (
    FinetuneConfig,
    check_generation_config,
    to_dict,
)
from plmkit.models.seq2seq import Seq2SeqLM
from plmkit.runtime.devices import pick_device, seed_everything
from plmkit.runtime.errors import UserError
from plmkit.runtime.files import atomic_write_text
from plmkit.runtime.processes import is_main_process
from plmkit.stages.start import fit_rows, model_to_finetune, open_tokenizer, report
from plmkit.tasks.seq2seq.features import (
    collate_pairs,
    encode_pairs,
    generate_texts,
    generation_metrics,
    seq2seq_loss,
)
from plmkit.tasks.tables import read_table
from plmkit.text.tokenizer import token_roles
from plmkit.train.state import check_fresh_output

ARCHITECTURE = "T5ForConditionalGeneration"


def run(cfg: FinetuneConfig) -> dict[str, Any]:
    """Fine-tune a seq2seq model per `cfg`; returns {"dev": metrics, "steps", "train_time_s"}."""
    check_generation_config(cfg.generation, "generation")
    run_dir = Path(cfg.output)
    check_fresh_output(run_dir, resume=cfg.resume)
    init_dir, tokenizer_dir, tokenizer = open_tokenizer(cfg)
    roles = token_roles(tokenizer)
    if roles.eos is None or roles.pad is None:
        raise UserError(f"{tokenizer_dir}: seq2seq needs a tokenizer with pad and eos tokens "
                        "(train one with kind=unigram)")

    train = read_table(cfg.train_file, cfg.table, task="seq2seq", limit=cfg.limit_train)
    dev = read_table(cfg.dev_file, cfg.table, task="seq2seq") if cfg.dev_file else None
    lengths = dict(max_source_length=cfg.max_length, max_target_length=cfg.max_target_length,
                   eos_id=roles.eos, pad_id=roles.pad)
    train_pairs = encode_pairs(tokenizer, train, **lengths)
    dev_pairs = encode_pairs(tokenizer, dev, **lengths) if dev else None

    checkpoint, model_cfg = model_to_finetune(cfg, tokenizer, init_dir, "t5",
                                              pad_token_id=roles.pad, eos_token_id=roles.eos)
    seed_everything(cfg.train.seed)
    model = Seq2SeqLM(model_cfg)
    if checkpoint:
        load_into(model, checkpoint)

    result = fit_rows(model, train_pairs, collate_pairs, seq2seq_loss, cfg, run_dir)
    if not is_main_process():  # rank 0 evaluates and writes
        return {"steps": result.steps, "train_time_s": result.train_time_s}

    dev_metrics: dict[str, float] = {}
    if dev_pairs is not None:
        hypotheses = generate_texts(model, tokenizer, dev_pairs, cfg.generation,
                                    device=pick_device(cfg.train.device))
        dev_metrics = generation_metrics(hypotheses, [str(ex.label) for ex in dev], rouge=True)
        atomic_write_text(run_dir / "dev-predictions.txt", "".join(h + "\n" for h in hypotheses))
    save_model(model, model_cfg, run_dir / "final", ARCHITECTURE,
               extra_config=task_config(cfg), tokenizer_dir=tokenizer_dir)
    return report(run_dir, result, dev_metrics)


def task_config(cfg: FinetuneConfig) -> dict[str, Any]:
    """config.json fields telling plmkit's readers how the model reads and writes text."""
    return {"plmkit_task": {"task": "seq2seq", "max_length": cfg.max_length,
                            "max_target_length": cfg.max_target_length,
                            "table": to_dict(cfg.table), "generation": to_dict(cfg.generation)}}
