"""The task families plmkit knows, and the one loader of a model directory for any of them.

`family_for_task` answers `finetune task=…`; `family_of` tells which family a config.json holds
(the task plmkit recorded, else its Hugging Face architecture, else its model type); and
`load_task_model` builds that family's model, reads its weights and settings, and checks a
model asked for as one family is that family (a tagger given a classifier is one line, not
a garbled prediction). A new family is one entry in FAMILIES.
"""

from __future__ import annotations

from pathlib import Path

from plmkit.checkpoint import load_into, read_checkpoint, resolve_model_dir
from plmkit.runtime.devices import pick_device
from plmkit.runtime.errors import UserError
from plmkit.tasks.classification.task import CLASSIFICATION
from plmkit.tasks.contract import TaskFamily, TaskModel
from plmkit.tasks.lm.task import LM
from plmkit.tasks.matching.task import MATCHING
from plmkit.tasks.ner.task import NER
from plmkit.tasks.qa.task import QA
from plmkit.tasks.seq2seq.task import SEQ2SEQ
from plmkit.text.tokenizer import load_tokenizer

FAMILIES: tuple[TaskFamily, ...] = (CLASSIFICATION, NER, QA, MATCHING, SEQ2SEQ, LM)
TASKS: tuple[str, ...] = tuple(task for family in FAMILIES for task in family.tasks)
_MODEL_TYPES = {"gpt2": LM, "t5": SEQ2SEQ}  # a bare decoder or encoder-decoder


def family_for_task(task: str) -> TaskFamily:
    """The family fine-tuning `task=…`; an unknown task is one line listing the known."""
    for family in FAMILIES:
        if task in family.tasks:
            return family
    raise UserError(f"finetune: task must be one of {', '.join(TASKS)}, got '{task}'")


def family_of(hf_config: dict) -> TaskFamily | None:
    """The family a config.json holds, or None when it names none (a pretraining export)."""
    task = (hf_config.get("plmkit_task") or {}).get("task")
    if task is not None:
        return next((f for f in FAMILIES if task in f.tasks), None)
    architecture = (hf_config.get("architectures") or [None])[0]
    for family in FAMILIES:
        if architecture in family.architectures:
            return family
    return _MODEL_TYPES.get(hf_config.get("model_type"))


def load_task_model(path: str | Path, device: str = "auto",
                    family: TaskFamily | None = None) -> TaskModel:
    """The model in `path` (a model directory, or a run holding final/) ready to predict.

    family: what the caller needs; None takes whatever the directory holds. A family that
    `accepts_any_encoder` (embeddings) reads the encoder of any directory of its model family.
    """
    model_dir = resolve_model_dir(path)
    checkpoint = read_checkpoint(model_dir)
    hf, cfg = checkpoint.hf_config, checkpoint.cfg
    found = family_of(hf)
    wanted = family or found
    if wanted is None:
        architecture = (hf.get("architectures") or ["none"])[0]
        raise UserError(f"{model_dir}: holds no fine-tuned task (architecture {architecture}); "
                        f"fine-tune one with plmkit finetune")
    any_encoder = wanted.accepts_any_encoder and cfg.family == wanted.model_family
    if (found is not wanted and not any_encoder) or cfg.family != wanted.model_family:
        kind = ((hf.get("plmkit_task") or {}).get("task") or (hf.get("architectures") or [None])[0]
                or f"family {cfg.family}")
        how = f"fine-tune one with task={wanted.tasks[0]}" if wanted.tasks else "pretrain one"
        raise UserError(f"{model_dir}: not {wanted.description} ({kind}); {how}")
    settings = wanted.settings_from_config(hf, cfg, model_dir)
    model = wanted.build(cfg, settings)
    load_into(model, checkpoint, require_heads=not wanted.accepts_any_encoder,
              architecture=wanted.architecture)
    torch_device = pick_device(device)
    return TaskModel(wanted, model.to(torch_device).eval(), cfg, load_tokenizer(model_dir), settings,
                     torch_device, model_dir)
