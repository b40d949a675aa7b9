"""`plmkit distill`: a fine-tuned teacher → a smaller student for the same task, labels and inputs.

teacher (a classifier, pair classifier, regressor or tagger) + its training file → a student
built as the teacher's family with fewer blocks, initialised from the teacher's own blocks
(`student_layers`) or from any pretrained encoder that shares the teacher's vocabulary
(`student_init`, any width) → trained by the one trainer on tasks/distillation.py's loss
(resumable like every run) → `final/`, a plain Hugging Face directory of the teacher's
architecture that `plmkit.load`, `evaluate`, `export` and Transformers read as they are. The
dev file is scored for both, so the table says what the smaller model costs.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from torch import nn

from plmkit.checkpoint import load_into, read_checkpoint, resolve_model_dir, save_model
from plmkit.config import DistillConfig, ModelConfig, check_model_config
from plmkit.runtime.console import print0
from plmkit.runtime.devices import pick_device, seed_everything
from plmkit.runtime.errors import UserError
from plmkit.runtime.outputs import check_apart
from plmkit.runtime.processes import is_main_process
from plmkit.stages.start import fit_rows, report
from plmkit.tasks.contract import TaskModel
from plmkit.tasks.distillation import distillation_loss
from plmkit.tasks.registry import load_task_model
from plmkit.text.tokenizer import load_tokenizer
from plmkit.train.checks import check_train_config
from plmkit.train.state import check_fresh_output, close_run

FAMILIES = ("classification", "ner")  # networks that return logits per row or per token
_BLOCK = re.compile(r"^encoder\.layers\.(\d+)\.(.+)$")


def run(cfg: DistillConfig) -> dict[str, Any]:
    """Distil `cfg.teacher` into a student in `cfg.output`; returns the summary."""
    _check(cfg)
    check_apart(cfg.output, [cfg.teacher, cfg.student_init, cfg.train_file, cfg.dev_file])
    run_dir = Path(cfg.output)
    check_fresh_output(run_dir, resume=cfg.resume, verb="distill", overwrite=cfg.overwrite)
    teacher = load_task_model(cfg.teacher, cfg.train.device)
    family = teacher.family
    if family.name not in FAMILIES:
        raise UserError(f"distill: {teacher.path} is {family.description}; distillation covers "
                        "classifiers, regressors and taggers")
    train = family.read(cfg.train_file, teacher.settings, cfg.limit_train)
    dev = family.read(cfg.dev_file, teacher.settings, 0) if cfg.dev_file else None
    if family.check:
        family.check(teacher.settings, train + (dev or []))
    train_set = family.encode(teacher.tokenizer, train, teacher.settings)

    seed_everything(cfg.train.seed)
    student, student_cfg, source = build_student(cfg, teacher)
    print0(f"distill: student {_millions(student)}M parameters ({source}), teacher "
           f"{_millions(teacher.model)}M")
    loss = distillation_loss(teacher.model, cfg.temperature, cfg.alpha)
    result = fit_rows(student, train_set, family.collate, loss, cfg, run_dir,
                      drop_last=family.drop_last)
    if not is_main_process():
        return {"steps": result.steps, "train_time_s": result.train_time_s}
    dev_metrics: dict[str, float] = {}
    extra: dict[str, Any] = {"student_parameters": _count(student),
                             "teacher_parameters": _count(teacher.model), "student_from": source}
    if dev:
        trained = dataclasses.replace(teacher, model=student.eval(), config=student_cfg, path=run_dir)
        dev_metrics, _ = family.score(trained, dev, cfg.eval_batch_size)
        extra["teacher_dev"], _ = family.score(teacher, dev, cfg.eval_batch_size)
    save_model(student, student_cfg, run_dir / "final", family.architecture,
               extra_config=family.settings_to_config(teacher.settings), tokenizer_dir=teacher.path)
    summary = report(run_dir, result, dev_metrics, shown=family.shown, verb="distill", **extra)
    if dev_metrics:
        print0("distill: the teacher's dev " + ", ".join(
            f"{k} {v:.4f}" for k, v in extra["teacher_dev"].items() if k in dev_metrics))
    close_run(run_dir)
    return summary


def build_student(cfg: DistillConfig, teacher: TaskModel) -> tuple[nn.Module, ModelConfig, str]:
    """(student, its config, where its weights came from), on the teacher's device."""
    family = teacher.family
    device = pick_device(cfg.train.device)
    if cfg.student_init:
        if cfg.student_layers:
            raise UserError("distill: student_layers picks teacher blocks; with student_init the "
                            "student is that encoder (drop one of the two)")
        init_dir = resolve_model_dir(cfg.student_init)
        if load_tokenizer(init_dir).get_vocab() != teacher.tokenizer.get_vocab():
            raise UserError(f"distill: {init_dir} has another vocabulary than the teacher; the "
                            "student reads the teacher's token ids, so it needs the same tokenizer")
        checkpoint = read_checkpoint(init_dir)
        if checkpoint.cfg.family != teacher.config.family:
            raise UserError(f"distill: {init_dir} is family '{checkpoint.cfg.family}', the "
                            f"teacher '{teacher.config.family}'")
        student_cfg = checkpoint.cfg
        check_model_config(student_cfg)
        student = family.build(student_cfg, teacher.settings)
        load_into(student, checkpoint, architecture=family.architecture)
        return student.to(device), student_cfg, f"from {init_dir}"
    layers = cfg.student_layers or default_layers(teacher.config.num_layers)
    if not 0 <= layers[0] <= layers[-1] < teacher.config.num_layers:
        raise UserError(f"distill: student_layers {layers}: the teacher's blocks are "
                        f"0..{teacher.config.num_layers - 1}")
    student_cfg = dataclasses.replace(teacher.config, num_layers=len(layers))
    student = family.build(student_cfg, teacher.settings)
    student.load_state_dict(teacher_blocks(teacher.model.state_dict(), layers))
    return student.to(device), student_cfg, f"teacher blocks {layers}"


def default_layers(count: int) -> list[int]:
    """Every other block, counted down from the top one (6 → [1, 3, 5]; 2 → [1])."""
    return list(range(count - 1, -1, -2))[::-1]


def teacher_blocks(state: dict[str, Any], layers: list[int]) -> dict[str, Any]:
    """The teacher's weights renamed for a student made of blocks `layers`: block i of the
    student is block layers[i] of the teacher; embeddings, pooler and head as they are."""
    out = {}
    for i, layer in enumerate(layers):
        for key, value in state.items():
            match = _BLOCK.match(key)
            if match and int(match.group(1)) == layer:
                out[f"encoder.layers.{i}.{match.group(2)}"] = value
    out.update({k: v for k, v in state.items() if not _BLOCK.match(k)})
    return out


def _check(cfg: DistillConfig) -> None:
    if not cfg.train_file:
        raise UserError("distill: train_file is required (the rows the teacher was fine-tuned on, "
                        "or more of the same kind)")
    if not cfg.temperature > 0:
        raise UserError(f"distill: temperature must be > 0, got {cfg.temperature}")
    if not 0 <= cfg.alpha <= 1:
        raise UserError(f"distill: alpha must be in [0, 1], got {cfg.alpha}")
    if not cfg.epochs > 0:
        raise UserError(f"distill: epochs must be > 0, got {cfg.epochs}")
    if len(set(cfg.student_layers)) != len(cfg.student_layers) or cfg.student_layers != sorted(cfg.student_layers):
        raise UserError(f"distill: student_layers must be distinct and increasing, got {cfg.student_layers}")
    check_train_config(dataclasses.replace(cfg.train, max_steps=cfg.train.max_steps or 1))


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _millions(model: nn.Module) -> str:
    return f"{_count(model) / 1e6:.2f}"
