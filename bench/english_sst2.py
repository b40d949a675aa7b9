"""Pretraining that pays, in English: the Wikipedia extract → a small BERT pretrained on CPU for a
fixed number of steps → SST-2 at a few label budgets, against the same network from random init
and TF-IDF baselines, all scored on SST-2 dev (its labelled test split is not in ../shared).

The demo's settings, unchanged (they were chosen on the Chinese demo's dev split, none on SST-2):
its model shape, pretraining schedule (for 3,500 steps by default: the demo's 6,000 would take
this over 30 CPU minutes) and both fine-tuning recipes (`DemoConfig().pretrain`, `.finetune`,
`.scratch`); only the tokenizer is English (WordPiece, lowercased). Every stage
writes under --work and is skipped when its output is already there, so an interrupted run
continues; the table goes to WORK/report.md.

    python bench/english_sst2.py                      # under 30 CPU minutes (see BENCHMARKS.md)
    python bench/english_sst2.py --articles 50 --steps 200 --budgets 500 --seeds 1 --work runs/en-smoke
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from time_to_quality import StageClock, head_of_wiki  # noqa: E402

from plmkit.config import DemoConfig, PrepareConfig, TableConfig, TokenizerStageConfig  # noqa: E402
from plmkit.stages import finetune, prepare, pretrain, tokenizer  # noqa: E402
from plmkit.tasks.classification.baseline import tfidf_baseline  # noqa: E402
from plmkit.tasks.metrics import markdown_table, spread  # noqa: E402
from plmkit.tasks.tables import read_table  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--enwiki", default=str(DATA / "enwiki-extract" / "enwiki_part1.txt.xz"))
    parser.add_argument("--sst2", default=str(DATA / "sst2"), help="folder with train.tsv, dev.tsv")
    parser.add_argument("--work", default="runs/english-sst2")
    parser.add_argument("--articles", type=int, default=1500, help="Wikipedia articles to pretrain on")
    parser.add_argument("--steps", type=int, default=3500, help="pretraining steps (the demo takes 6,000; 3,500 keeps this under 30 CPU minutes)")
    parser.add_argument("--budgets", default="500,5000", help="SST-2 labels per cell, comma-separated")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    demo = DemoConfig()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    clock = StageClock(work / "stages.json")
    corpus = head_of_wiki(Path(args.enwiki), work / "enwiki-head.txt", args.articles)

    tok_dir, shards, pre_dir = work / "tokenizer", work / "shards", work / "pretrain"
    table = TableConfig(text_column="sentence")
    train_rows = read_table(f"{args.sst2}/train.tsv", table)
    dev_rows = read_table(f"{args.sst2}/dev.tsv", table)
    probe = work / "sst2-dev-sentences.txt"  # the tokenizer report's probe: one sentence per line
    probe.write_text("".join(ex.text + "\n" for ex in dev_rows), encoding="utf-8")
    if not (tok_dir / "tokenizer.json").is_file():
        with clock("tokenizer"):
            tokenizer.run(TokenizerStageConfig(inputs=[str(corpus)], output=str(tok_dir),
                                               vocab_size=8000, lowercase=True,
                                               probe_file=str(probe)))
    if not (shards / "header.json").is_file():
        with clock("prepare"):
            prepare.run(PrepareConfig(inputs=[str(corpus)], tokenizer=str(tok_dir), output=str(shards)))
    if not (pre_dir / "summary.json").is_file():
        with clock("pretrain"):
            pretrain.run(dataclasses.replace(
                demo.pretrain, shards=str(shards), output=str(pre_dir),
                resume=(pre_dir / "config.yaml").is_file(),
                train=dataclasses.replace(demo.pretrain.train, max_steps=args.steps)))
    pre = json.loads((pre_dir / "summary.json").read_text())

    rows = []
    for budget in budgets:
        row: dict = {"labels": budget}
        for name, init, ft in (("pretrained", str(pre_dir), demo.finetune), ("scratch", None, demo.scratch)):
            with clock(f"finetune-{name}-{budget}"):
                row[name] = _cell(_finetune(ft, demo, args, init, budget, work / f"{name}-{budget}", tok_dir))
        for analyzer, ngrams in (("char", (1, 3)), ("word", (1, 2))):
            row[f"tfidf_{analyzer}"] = round(100 * tfidf_baseline(
                train_rows[:budget], dev_rows, analyzer=analyzer, ngram_range=ngrams)["accuracy"], 1)
        rows.append(row)
        print(f"english: {budget} labels → {row}", flush=True)

    header = json.loads((shards / "header.json").read_text())
    summary = [{"articles": args.articles, "tokens_M": header["splits"]["train"]["tokens"] / 1e6,
                "params_M": pre["parameters"] / 1e6, "steps": pre["steps"],
                "mlm_loss_end": pre["end"]["val_mlm_loss"], "mlm_acc_end": pre["end"]["val_mlm_acc"],
                **{f"{k}_s": v for k, v in clock.times.items() if not k.startswith("finetune")},
                "finetune_s": sum(v for k, v in clock.times.items() if k.startswith("finetune")),
                "total_s": sum(clock.times.values())}]
    report = "\n".join([
        markdown_table(summary, list(summary[0])), "",
        f"SST-2 dev accuracy (%, 872 sentences); fine-tuned cells: median (min–max) of {args.seeds} seeds.", "",
        markdown_table(rows, ["labels", "pretrained", "scratch", "tfidf_char", "tfidf_word"]),
    ])
    (work / "report.md").write_text(report + "\n", encoding="utf-8")
    print(report)


def _finetune(ft, demo: DemoConfig, args, init: str | None, budget: int, out: Path, tok_dir: Path) -> list[float]:
    """Dev accuracy of each seed of one (init, budget) cell, as the demo fine-tunes it."""
    summary_file = out / "summary.json"
    if not summary_file.is_file():
        steps = max(demo.min_finetune_steps, finetune.steps_for_epochs(ft, budget))
        finetune.run(dataclasses.replace(
            ft, init=init, tokenizer=str(tok_dir), train_file=f"{args.sst2}/train.tsv",
            dev_file=f"{args.sst2}/dev.tsv", table=TableConfig(text_column="sentence"),
            model=demo.pretrain.model if init is None else ft.model, limit_train=budget,
            output=str(out), seeds=args.seeds, overwrite=out.exists(),
            train=dataclasses.replace(ft.train, max_steps=steps)))
    summary = json.loads(summary_file.read_text())
    runs = summary["runs"] if args.seeds > 1 else [summary]
    return [r["dev"]["accuracy"] for r in runs]


def _cell(accuracies: list[float]) -> str:
    s = spread(accuracies)
    return f"{100 * s['median']:.1f} ({100 * s['min']:.1f}–{100 * s['max']:.1f})"


if __name__ == "__main__":
    started = time.monotonic()
    main()
    print(f"wall: {time.monotonic() - started:.0f} s")
