"""The demo's dev-only ablation: each variant is `plmkit demo` with a few settings changed, and
the table is its dev accuracy per label budget (median of the seeds; test is never read here).

    python bench/demo_ablation.py                       # every variant at the demo's budget
    python bench/demo_ablation.py --only base,wwm       # some of them
    python bench/demo_ablation.py --quick               # 1/4 of the pretraining steps, 1 seed, 500 labels

Each variant writes under --output/<name>/ (a demo directory); a variant whose results.json
is already there is read, not rerun, so an interrupted ablation continues.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import plmkit
from plmkit.config import DemoConfig, load_config

VARIANTS = {
    "base": [],
    "no-tapt": ["tapt.train.max_steps=0"],
    "wwm": ["word_boundaries=jieba", "pretrain.objective.whole_word=true",
            "tapt.objective.whole_word=true"],
    "electra": ["pretrain.objective.kind=electra", "pretrain.objective.nsp=false",
                "tapt.objective.kind=electra", "tapt.objective.nsp=false"],
    "no-head-first": ["finetune.train.head_first=0"],
}
QUICK = ["pretrain.train.max_steps=1500", "tapt.train.max_steps=250", "seeds=1", "budgets=[500]"]


def run_variant(name: str, settings: list[str], output: Path) -> dict:
    result_file = output / name / "results.json"
    if not result_file.is_file():
        cfg = load_config(DemoConfig, None, [*settings, f"output={output / name}"])
        plmkit.demo(cfg)
    return json.loads(result_file.read_text(encoding="utf-8"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated variants (default: all)")
    parser.add_argument("--quick", action="store_true", help="a short budget, for a smoke run")
    parser.add_argument("--output", type=Path, default=Path("runs/demo-ablation"))
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or list(VARIANTS)
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    rows = []
    for name in names:
        settings = VARIANTS[name] + (QUICK if args.quick else [])
        result = run_variant(name, settings, args.output / ("quick" if args.quick else "full"))
        for cell in result["budgets"]:
            rows.append((name, cell["labels"], cell["pretrained_dev_acc"], cell["scratch_dev_acc"]))
    print("| variant | labels | pretrained dev acc, median (min–max) | scratch dev acc |")
    print("| --- | ---: | ---: | ---: |")
    for name, labels, pre, scratch in rows:
        print(f"| {name} | {labels} | {_cell(pre)} | {_cell(scratch)} |")


def _cell(s: dict) -> str:
    return f"{100 * s['median']:.1f} ({100 * s['min']:.1f}–{100 * s['max']:.1f})"


if __name__ == "__main__":
    main()
