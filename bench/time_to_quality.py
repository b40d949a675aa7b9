"""Time to quality: raw English Wikipedia → tokenizer → shards → BERT pretrained for a fixed
wall budget → SST-2 fine-tuned → dev accuracy, with the MLM loss curve.

Every stage writes under --work and is skipped when its output is already there; pretraining
resumes from its newest checkpoint (`resume=true`) and stops at `train.max_time_s` of training
time summed across resumes. So one run may span several device commands of ≤ 10 minutes: rerun
the same command until it prints the table. Wall time per stage is recorded in
WORK/stages.json across commands, so the total covers every command's share.

    # GPU (the data carried to the device under .cache/): BERT-base shape, 20 min of pretraining
    python bench/time_to_quality.py --recipe recipes/wiki-gpu.yaml --enwiki .cache/enwiki_part1.txt.xz \
        --sst2 .cache/sst2 --work .cache/ttq
    # inside one device command after the compile check, pretraining for the time left:
    PARTS="checks ttq" bash bench/gpu_session.sh
    # CPU smoke run of the same path (tiny model, ~3 minutes on 2 cores)
    python bench/time_to_quality.py --smoke --work runs/ttq-smoke
"""

from __future__ import annotations

import argparse
import json
import lzma
import time
from pathlib import Path

from plmkit.config import (
    FinetuneConfig,
    PrepareConfig,
    PretrainConfig,
    TableConfig,
    TokenizerStageConfig,
    from_dict,
    merge,
    read_yaml,
)
from plmkit.stages import finetune, prepare, pretrain, tokenizer
from plmkit.tasks.metrics import markdown_table
from plmkit.train.log import read_rows

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SMOKE_ARTICLES = 300
SMOKE = {  # the recipe's shape, shrunk until it runs in minutes on a laptop CPU
    "tokenizer": {"vocab_size": 8000},
    "pretrain": {"model": {"hidden_size": 128, "num_layers": 2, "num_heads": 2,
                           "intermediate_size": 512},
                 "train": {"batch_size": 32, "max_time_s": 60, "compile": False, "precision": "fp32",
                           "save_every": 200, "log_every": 20}},
    "finetune": {"limit_train": 2000, "epochs": 1, "train": {"precision": "fp32"}},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="recipes/wiki-gpu.yaml")
    parser.add_argument("--enwiki", default=str(DATA / "enwiki-extract" / "enwiki_part1.txt.xz"))
    parser.add_argument("--sst2", default=str(DATA / "sst2"), help="folder with train.tsv, dev.tsv")
    parser.add_argument("--work", default="runs/time-to-quality")
    parser.add_argument("--smoke", action="store_true", help="tiny model and budget, for CPU")
    parser.add_argument(
        "--data-only", action="store_true", help="tokenizer and shards only (CPU work, no GPU)"
    )
    parser.add_argument(
        "--pretrain-seconds",
        type=float,
        default=0.0,
        help="training-time budget of pretraining (overrides the recipe's train.max_time_s)",
    )
    parser.add_argument(
        "--no-compile", action="store_true", help="pretrain eagerly whatever the recipe says"
    )
    args = parser.parse_args()
    recipe = read_yaml(args.recipe)
    if args.smoke:
        recipe = merge(recipe, SMOKE)
    if args.no_compile:
        recipe = merge(recipe, {"pretrain": {"train": {"compile": False}}})
    if args.pretrain_seconds > 0:
        recipe = merge(recipe, {"pretrain": {"train": {"max_time_s": args.pretrain_seconds}}})
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    clock = StageClock(work / "stages.json")
    if args.smoke:  # the first articles only: the same path in minutes
        args.enwiki = str(head_of_wiki(Path(args.enwiki), work / "enwiki-head.txt", SMOKE_ARTICLES))

    tok_dir, shards, pre_dir, ft_dir = work / "tokenizer", work / "shards", work / "pretrain", work / "sst2"
    if not (tok_dir / "tokenizer.json").is_file():
        with clock("tokenizer"):
            tokenizer.run(from_dict(TokenizerStageConfig, recipe.get("tokenizer"),
                                    base=TokenizerStageConfig(inputs=[args.enwiki], output=str(tok_dir))))
    if not (shards / "header.json").is_file():
        with clock("prepare"):
            prepare.run(from_dict(PrepareConfig, recipe.get("prepare"),
                                  base=PrepareConfig(inputs=[args.enwiki], tokenizer=str(tok_dir),
                                                     output=str(shards))))
    if args.data_only:
        return
    if not (pre_dir / "summary.json").is_file():
        with clock("pretrain"):
            resume = (pre_dir / "config.yaml").is_file()
            pretrain.run(from_dict(PretrainConfig, recipe.get("pretrain"),
                                   base=PretrainConfig(shards=str(shards), output=str(pre_dir),
                                                       resume=resume)))
    if not (ft_dir / "summary.json").is_file():
        with clock("finetune"):
            finetune.run(from_dict(FinetuneConfig, recipe.get("finetune"), base=FinetuneConfig(
                init=str(pre_dir), train_file=f"{args.sst2}/train.tsv",
                dev_file=f"{args.sst2}/dev.tsv", output=str(ft_dir),
                table=TableConfig(text_column="sentence"))))
    table = report(pre_dir, ft_dir, clock.times)
    (work / "report.md").write_text(table + "\n", encoding="utf-8")
    print(table)


def head_of_wiki(source: Path, target: Path, articles: int) -> Path:
    """The first `articles` <doc> entries of a WikiExtractor file (.xz or plain), written once."""
    if not target.is_file():
        opener = lzma.open if source.suffix == ".xz" else open
        lines, seen = [], 0
        with opener(source, "rt", encoding="utf-8") as f:
            for line in f:
                lines.append(line)
                seen += line.startswith("</doc>")
                if seen == articles:
                    break
        target.write_text("".join(lines), encoding="utf-8")
    return target


class StageClock:
    """Wall seconds per stage, summed over every command that worked on it (kept in a file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.times: dict[str, float] = json.loads(path.read_text()) if path.is_file() else {}

    def __call__(self, stage: str) -> StageClock:
        self.stage = stage
        return self

    def __enter__(self) -> None:
        self.started = time.monotonic()

    def __exit__(self, *exc: object) -> None:  # also on a crash or a device-time kill
        self.times[self.stage] = self.times.get(self.stage, 0.0) + time.monotonic() - self.started
        self.path.write_text(json.dumps(self.times, indent=2))


def report(pre_dir: Path, ft_dir: Path, times: dict[str, float]) -> str:
    """The result table and the MLM loss curve (validation rows, and every 10th training row)."""
    pre = json.loads((pre_dir / "summary.json").read_text())
    dev = json.loads((ft_dir / "summary.json").read_text())["dev"]
    summary = [{"pretrain_steps": pre["steps"], "pretrain_train_s": pre["train_time_s"],
                "val_mlm_loss": pre["end"]["val_mlm_loss"], "val_mlm_acc": pre["end"]["val_mlm_acc"],
                "sst2_dev_acc": dev["accuracy"], **{f"{k}_wall_s": v for k, v in times.items()},
                "total_wall_s": sum(times.values())}]
    rows = read_rows(pre_dir)
    train = [r for r in rows if r.get("split") == "train"]
    curve = [{"step": r["step"], "time_s": r["time"], "train_loss": r["loss"]}
             for r in train[:: max(1, len(train) // 20)]]
    evals = [{"step": r["step"], "time_s": r["time"], "val_mlm_loss": r.get("eval_val_mlm_loss")}
             for r in rows if r.get("split") == "eval"]
    return "\n".join([markdown_table(summary, list(summary[0])), "", "MLM loss curve:", "",
                      markdown_table(curve, ["step", "time_s", "train_loss"]), "",
                      markdown_table(evals, ["step", "time_s", "val_mlm_loss"]) if evals else ""])


if __name__ == "__main__":
    main()
