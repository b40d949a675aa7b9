"""Sequence to sequence (translation, summaries), as a task contract.

A fine-tuned model is a Hugging Face `T5ForConditionalGeneration` directory whose config.json
records how it reads sources (columns, max lengths) and the generation settings it decoded its
dev set with; a foreign T5 directory reads up to its max_position and decodes greedily. A
prediction is the generated text.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from plmkit.config import (
    FinetuneConfig,
    GenerationConfig,
    ModelConfig,
    PredictConfig,
    TableConfig,
    check_generation_config,
    from_dict,
    to_dict,
)
from plmkit.models.seq2seq import Seq2SeqLM
from plmkit.runtime.errors import UserError
from plmkit.tasks.contract import Prediction, TaskFamily, TaskModel
from plmkit.tasks.inputs import prediction_texts
from plmkit.tasks.seq2seq.features import (
    PairSet,
    collate_pairs,
    encode_pairs,
    generate_texts,
    generation_metrics,
    seq2seq_loss,
)
from plmkit.tasks.tables import Example, read_table
from plmkit.text.tokenizer import token_roles


@dataclasses.dataclass(frozen=True)
class Seq2SeqSettings:
    max_length: int  # source tokens, eos included
    max_target_length: int
    table: TableConfig
    generation: GenerationConfig


def configure(cfg: FinetuneConfig, tokenizer: Tokenizer) -> Seq2SeqSettings:
    check_generation_config(cfg.generation, "generation")
    _roles(tokenizer)
    return Seq2SeqSettings(cfg.max_length, cfg.max_target_length, cfg.table, cfg.generation)


def _roles(tokenizer: Tokenizer):
    roles = token_roles(tokenizer)
    if roles.eos is None or roles.pad is None:
        raise UserError("finetune: seq2seq needs a tokenizer with pad and eos tokens "
                        "(train one with kind=unigram)")
    return roles


def read(path: str | Path, settings: Seq2SeqSettings, limit: int = 0) -> list[Example]:
    return read_table(path, settings.table, task="seq2seq", limit=limit)


def encode(tokenizer: Tokenizer, rows: list[Example], settings: Seq2SeqSettings) -> PairSet:
    roles = _roles(tokenizer)
    return encode_pairs(tokenizer, rows, max_source_length=settings.max_length,
                        max_target_length=settings.max_target_length, eos_id=roles.eos,
                        pad_id=roles.pad)


def build(cfg: ModelConfig, settings: Seq2SeqSettings) -> Seq2SeqLM:
    return Seq2SeqLM(cfg)


def random_init(tokenizer: Tokenizer) -> dict[str, Any]:
    roles = _roles(tokenizer)
    return {"pad_token_id": roles.pad, "eos_token_id": roles.eos}


def settings_to_config(settings: Seq2SeqSettings) -> dict[str, Any]:
    return {"plmkit_task": {"task": "seq2seq", "max_length": settings.max_length,
                            "max_target_length": settings.max_target_length,
                            "table": to_dict(settings.table),
                            "generation": to_dict(settings.generation)}}


def settings_from_config(hf: dict, cfg: ModelConfig, model_dir: Path) -> Seq2SeqSettings:
    info = hf.get("plmkit_task") or {}
    table = from_dict(TableConfig, info.get("table"), "plmkit_task.table")
    generation = from_dict(GenerationConfig, info.get("generation"), "plmkit_task.generation")
    # Relative positions set no window, but attention is quadratic: a source is cut at what
    # the model was fine-tuned on (or its config's max_position).
    return Seq2SeqSettings(info.get("max_length") or cfg.max_position,
                           info.get("max_target_length", 128), table, generation)


def outputs(tm: TaskModel, rows: list[Example], batch_size: int) -> list[str]:
    """The generated text of every row's source, decoded with the model's generation settings."""
    if not rows:
        return []
    pairs = encode(tm.tokenizer, rows, tm.settings)
    return generate_texts(tm.model, tm.tokenizer, pairs, tm.settings.generation, batch_size,
                          device=tm.device)


def score(tm: TaskModel, rows: list[Example], batch_size: int) -> tuple[dict, list[Prediction]]:
    """BLEU, chrF and ROUGE of the generated texts against the rows' targets."""
    texts = outputs(tm, rows, batch_size)
    metrics = generation_metrics(texts, [str(ex.label) for ex in rows], rouge=True)
    return metrics, [{"output": t} for t in texts]


def predict(tm: TaskModel, rows: list[Example], batch_size: int) -> list[Prediction]:
    return [{"output": t} for t in outputs(tm, rows, batch_size)]


def parse(value: Any, index: int) -> Example:
    if not isinstance(value, str):
        raise UserError(f"predict: input {index + 1}: a seq2seq model takes a source text")
    if not value.strip():
        raise UserError(f"predict: text {index + 1} is empty")
    return Example(value, None, None, index + 1)


def inputs(cfg: PredictConfig, settings: Seq2SeqSettings) -> list[tuple[dict, Example]]:
    return [({"text": text}, parse(text, i))
            for i, (text, _) in enumerate(prediction_texts(cfg, paired=False))]


def dump(rows: list[Example], predictions: list[Prediction]) -> tuple[str, str]:
    """dev-predictions.txt: one hypothesis per line, in row order (what sacreBLEU reads)."""
    return "dev-predictions.txt", "".join(p["output"] + "\n" for p in predictions)


SEQ2SEQ = TaskFamily(
    name="seq2seq",
    tasks=("seq2seq",),
    architectures=("T5ForConditionalGeneration",),
    model_family="t5",
    description="a seq2seq model (T5)",
    build=build,
    settings_from_config=settings_from_config,
    configure=configure,
    read=read,
    encode=encode,
    collate=collate_pairs,
    loss=lambda settings: seq2seq_loss,
    settings_to_config=settings_to_config,
    random_init=random_init,
    score=score,
    predict=predict,
    parse=parse,
    inputs=inputs,
    dump=dump,
)
