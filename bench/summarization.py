"""Summarization on BBC News (../shared/data): a small T5 pretrained on the articles vs random init, and lead-3.

The data has no split, so this script fixes one: articles sorted by id, every 10th is test,
every 10th after it dev, the rest train. The articles of the train split are the unlabelled
text for span-corruption pretraining; fine-tuning reads (article, summary) pairs with the
article cut to --source-tokens. Scores are ROUGE-1/2/L F1 (rouge-score, stemmed) on test,
beside the lead-3 baseline (the article's first three sentences), which is strong on news.

    python bench/summarization.py [--pretrain-s 300 | --pretrain-steps 2000] [--finetune-steps 1000]
"""

from __future__ import annotations

import argparse
import json
import lzma
import time
from pathlib import Path

from plmkit.cli import main as plmkit
from plmkit.config import EvaluateConfig
from plmkit.stages import evaluate
from plmkit.tasks.seq2seq.features import generation_metrics
from plmkit.text.corpus import split_sentences

BBC = Path(__file__).resolve().parents[2] / "shared" / "data" / "bbc-news-summary" / "bbc_news_summary.jsonl.xz"


def cli(*args: str) -> None:
    if plmkit(list(args)) != 0:
        raise SystemExit(f"plmkit {args[0]} failed")


def clean(text: str) -> str:
    return " ".join(text.split())


def write_splits(work: Path) -> dict[str, list[dict]]:
    with lzma.open(BBC, "rt", encoding="utf-8") as f:
        rows = sorted((json.loads(line) for line in f if line.strip()), key=lambda r: r["id"])
    splits: dict[str, list[dict]] = {"train": [], "dev": [], "test": []}
    for i, row in enumerate(rows):
        splits["test" if i % 10 == 0 else "dev" if i % 10 == 1 else "train"].append(row)
    for name, part in splits.items():
        (work / f"{name}.jsonl").write_text(
            "".join(json.dumps({"article": clean(r["article"]), "summary": clean(r["summary"])},
                               ensure_ascii=False) + "\n" for r in part), encoding="utf-8")
    (work / "articles.txt").write_text(
        "\n\n".join(r["article"].strip() for r in splits["train"]) + "\n", encoding="utf-8")
    return splits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="runs/bench-summarization")
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--pretrain-s", type=float, default=300)
    parser.add_argument("--pretrain-steps", type=int, default=0, help="a step budget instead of --pretrain-s")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--finetune-steps", type=int, default=1000)
    parser.add_argument("--source-tokens", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=3)
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    splits = write_splits(work)
    model = [f"model.hidden_size={args.hidden}", f"model.num_layers={args.layers}",
             "model.num_heads=4", f"model.head_dim={args.hidden // 4}",
             f"model.intermediate_size={4 * args.hidden}", "model.layer_norm_eps=1e-6"]
    cli("tokenizer", f"inputs={work / 'articles.txt'}", f"output={work / 'tok'}", "kind=unigram",
        f"vocab_size={args.vocab}")
    cli("prepare", f"inputs={work / 'articles.txt'}", f"tokenizer={work / 'tok'}",
        f"output={work / 'shards'}", "val_fraction=0.02")
    budget = ([f"train.max_steps={args.pretrain_steps}"] if args.pretrain_steps else
              ["train.max_steps=1000000", f"train.max_time_s={args.pretrain_s}"])
    # As bench/translation.py: no dropout, each matrix's rate scaled by its RMS (train/optim.py)
    cli("pretrain", f"shards={work / 'shards'}", f"output={work / 'pre'}", "objective.kind=span",
        *model, "model.dropout=0.0", "objective.seq_len=128", "train.batch_size=32",
        "train.lr=3e-2", "train.lr_by_rms=true", *budget, "train.warmup_fraction=0.05",
        "train.log_every=50", f"train.threads={args.threads}")
    finetune = ["task=seq2seq", f"train_file={work / 'train.jsonl'}", f"dev_file={work / 'dev.jsonl'}",
                "table.text_column=article", "table.label_column=summary",
                f"max_length={args.source_tokens}", "max_target_length=128",
                f"train.max_steps={args.finetune_steps}", "train.batch_size=16", "train.lr=1e-3",
                "train.log_every=50", "generation.max_new_tokens=100", f"train.threads={args.threads}",
                "dropout=0.1"]  # the same for both inits (the pretrained checkpoint says 0)
    rows = []
    for name, init in (("T5 pretrained", [f"init={work / 'pre'}"]),
                       ("T5 random init", [f"tokenizer={work / 'tok'}", *model])):
        run = work / name.split()[-1]
        started = time.perf_counter()
        cli("finetune", *init, *finetune, f"output={run}")
        seconds = time.perf_counter() - started
        test = evaluate.run(EvaluateConfig(model=str(run), file=str(work / "test.jsonl"),
                                           output=str(run / "test.md"), batch_size=32))
        rows.append((name, test, seconds))
    pre = json.loads((work / "pre" / "summary.json").read_text())
    bodies = [r["article"].split("\n", 1)[-1] for r in splits["test"]]  # line 1 is the title
    lead = [" ".join(split_sentences(clean(body))[:3]) for body in bodies]
    rows.append(("lead-3", generation_metrics(lead, [clean(r["summary"]) for r in splits["test"]], rouge=True), 0.0))
    print(f"\nBBC News summaries: {len(splits['train'])} train / {len(splits['dev'])} dev / "
          f"{len(splits['test'])} test articles; T5 {args.hidden}×{args.layers}+{args.layers}, "
          f"span corruption {pre['steps']} steps ({pre['train_time_s']:.0f} s, span-token accuracy "
          f"{pre['end']['val_span_acc']:.3f}), fine-tuning {args.finetune_steps} steps, greedy\n")
    print("| system | ROUGE-1 | ROUGE-2 | ROUGE-L | fine-tune s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, m, seconds in rows:
        print(f"| {name} | {100 * m['rouge1']:.1f} | {100 * m['rouge2']:.1f} | {100 * m['rougeL']:.1f} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
