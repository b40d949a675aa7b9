"""`plmkit export format=onnx|int8|onnx,int8`: a fine-tuned model's ONNX forms, gated on dev.

fine-tuned model + labelled dev rows → model.onnx (checked against the PyTorch model on those
rows: past 1e-4 nothing is written) → int8 (per channel or per tensor, whichever scores better
on dev unless told) → every form scored and timed on the same rows → gate.md. A form whose
metric falls more than `max_drop` points below the source's is left out (the table says so,
and the command exits non-zero). One form: OUTPUT is its directory; several: OUTPUT/onnx,
OUTPUT/int8. Each form's directory is what `plmkit.load` and `plmkit predict` read without
torch: model.onnx, config.json (the source's, with `plmkit_form`) and the tokenizer files.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from plmkit.checkpoint import read_hf_config
from plmkit.config import ExportConfig
from plmkit.export.gate import FormReport, measure_onnx, measure_source
from plmkit.export.int8 import quantize_int8
from plmkit.export.onnx import OPSET, check_exported, export_network, head_parameters
from plmkit.runtime.console import print0
from plmkit.runtime.errors import UserError
from plmkit.runtime.files import atomic_dir, atomic_write_text
from plmkit.runtime.outputs import MARKER, claim_output
from plmkit.serve.onnx_predictor import MODEL_FILE, onnx_model_dir
from plmkit.tasks.arrays import INPUT_KEYS, longest_first
from plmkit.tasks.contract import TaskModel
from plmkit.tasks.metrics import markdown_table
from plmkit.tasks.onnx_views import view_of
from plmkit.tasks.registry import load_task_model
from plmkit.text.tokenizer import copy_tokenizer_files

FORMS = ("onnx", "int8")
CHECK_ROWS = 256  # dev rows the ONNX graph is compared on, in batches of CHECK_BATCH
CHECK_BATCH = 32


def parse_forms(text: str) -> list[str]:
    forms = [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in forms if f not in FORMS]
    if not forms or unknown:
        raise UserError(f"export: format must be hf, or one or more of {', '.join(FORMS)} "
                        f"separated by commas, got '{text}'")
    return list(dict.fromkeys(forms))


def run(cfg: ExportConfig) -> list[FormReport]:
    forms = parse_forms(cfg.format)
    per_channel = {"auto": (False, True), "true": (True,), "false": (False,)}.get(cfg.per_channel.lower())
    if per_channel is None:
        raise UserError(f"export: per_channel must be auto, true or false, got '{cfg.per_channel}'")
    if not cfg.max_drop >= 0:
        raise UserError(f"export: max_drop is in points and must be ≥ 0, got {cfg.max_drop}")
    if not cfg.eval_file:
        raise UserError(f"export format={cfg.format}: give eval_file= (labelled dev rows): every "
                        "form is checked against the PyTorch model, scored and timed on them")
    claim_output(cfg.output, "export", [cfg.model, cfg.eval_file], replace=cfg.overwrite)
    if onnx_model_dir(cfg.model) is not None:
        form = read_hf_config(onnx_model_dir(cfg.model)).get("plmkit_form") or {}
        raise UserError(f"export: {cfg.model} is already an ONNX form ({form.get('form', 'onnx')}); "
                        f"export from the PyTorch model it came from ({form.get('source', '?')})")
    hf_config = read_hf_config(cfg.model)
    view = view_of(hf_config)
    if view is None:
        kind = ((hf_config.get("plmkit_task") or {}).get("task")
                or (hf_config.get("architectures") or [hf_config.get("model_type", "?")])[0])
        raise UserError(f"export: {cfg.model} is a {kind} model; the ONNX forms cover sentence "
                        "classifiers and regressors so far (format=hf writes any model)")
    tm = load_task_model(cfg.model, device="cpu")
    rows = tm.family.read(cfg.eval_file, tm.settings, 0)
    if not rows:
        raise UserError(f"export: {cfg.eval_file} has no rows")
    source, reference = measure_source(tm, rows, tm.path / "model.safetensors")
    reports, refused = [source], []
    with atomic_dir(cfg.output, "export") as out:
        fp32_dir = out / "onnx" if len(forms) > 1 or "onnx" not in forms else out
        fp32_dir.mkdir(exist_ok=True)
        batches = _check_batches(tm, rows)
        export_network(tm.model, view.outputs, fp32_dir / MODEL_FILE, batches[0])
        diff = check_exported(tm.model, fp32_dir / MODEL_FILE, batches)
        print0(f"export: ONNX opset {OPSET}, max abs difference from PyTorch {diff:.1e} "
               f"on {sum(len(b['input_ids']) for b in batches)} dev rows")
        _describe(fp32_dir, tm, hf_config, "onnx", {"max_abs_diff": diff})
        onnx_report = measure_onnx("onnx fp32", fp32_dir, tm, view, rows, source, reference)
        if "onnx" in forms:
            reports.append(onnx_report)
        if "int8" in forms:
            int8_dir = out / "int8" if len(forms) > 1 else out / ".int8"
            reports += _int8_candidates(tm, view, rows, source, reference, fp32_dir, int8_dir,
                                        per_channel, hf_config)
            if len(forms) == 1:  # int8 alone: its files are the output, the fp32 form is not
                shutil.rmtree(fp32_dir)
                for item in int8_dir.iterdir():
                    shutil.move(str(item), str(out / item.name))
                int8_dir.rmdir()
        for report in reports[1:]:
            name = "int8" if "int8" in report.form else "onnx"
            if report.kept and report.delta < -cfg.max_drop:
                report.kept, report.note = False, f"Δ below −{cfg.max_drop}"
                refused.append(report)
                _remove_form(out, name, len(forms))
        table = render_gate(reports, cfg, len(rows))
        atomic_write_text(out / "gate.md", table)
        atomic_write_text(out / "gate.json", json.dumps([r.row() for r in reports], indent=2))
    print0(table)
    if refused:
        names = ", ".join(f"{r.form} ({r.note})" for r in refused)
        raise UserError(f"export: not written: {names}; pass max_drop= to accept a larger drop")
    return reports


def render_gate(reports: list[FormReport], cfg: ExportConfig, n: int) -> str:
    rows = [r.cells() for r in reports]
    columns = list(rows[0])
    return (f"## Export gate: {cfg.model} on {cfg.eval_file} ({n} rows)\n\n"
            + markdown_table(rows, columns) + "\n\nLatency: one request of one row; throughput: "
            f"batches of 32. A form more than {cfg.max_drop} points below the source is not written.\n")


def _int8_candidates(tm: TaskModel, view, rows, source: FormReport, reference, fp32_dir: Path,
                     int8_dir: Path, per_channel: tuple[bool, ...], hf_config: dict) -> list[FormReport]:
    """Quantize per tensor and/or per channel and score each; the better one on dev (then the
    one agreeing more with the source) becomes `int8_dir`, the other is reported, not kept."""
    candidates: list[tuple[FormReport, Path]] = []
    for channel in per_channel:
        granularity = "channel" if channel else "tensor"
        directory = int8_dir.with_name(f"{int8_dir.name}-{granularity}")
        directory.mkdir()
        kept = quantize_int8(fp32_dir / MODEL_FILE, directory / MODEL_FILE, channel,
                             head_parameters(tm.model))
        _describe(directory, tm, hf_config, "int8", {"per_channel": channel, "fp32_nodes": kept})
        candidates.append((measure_onnx(f"onnx int8, per {granularity}", directory, tm, view, rows,
                                        source, reference), directory))
    best = max(candidates, key=lambda c: (c[0].value, c[0].agreement))
    for report, directory in candidates:
        if report is best[0]:
            directory.rename(int8_dir)
        else:
            report.kept, report.note = False, "the other int8 scored higher"
            shutil.rmtree(directory)
    return [report for report, _ in candidates]


def _describe(directory: Path, tm: TaskModel, hf_config: dict, form: str, extra: dict) -> None:
    """config.json (the source's, plus how this form was made) and the tokenizer files."""
    config = {**hf_config, "plmkit_form": {"form": form, "opset": OPSET, "source": str(tm.path),
                                           **extra}}
    atomic_write_text(directory / "config.json", json.dumps(config, indent=2, ensure_ascii=False))
    copy_tokenizer_files(tm.path, directory)


def _remove_form(out: Path, name: str, count: int) -> None:
    if count > 1:
        shutil.rmtree(out / name)
    else:
        for item in out.iterdir():
            if item.name != MARKER:
                shutil.rmtree(item) if item.is_dir() else item.unlink()


def _check_batches(tm: TaskModel, rows: list) -> list[dict[str, np.ndarray]]:
    """Encoder inputs for the first CHECK_ROWS dev rows, as the family encodes them."""
    encoded = tm.family.encode(tm.tokenizer, rows[:CHECK_ROWS], tm.settings)
    lengths = [len(ids) for ids in encoded.input_ids]
    return [{key: tm.family.collate(encoded, indices)[key].numpy() for key in INPUT_KEYS}
            for indices in longest_first(lengths, CHECK_BATCH)]
