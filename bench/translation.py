"""Does span-corruption pretraining help translation? Multi30k en→de, pretrained vs random init.

The setting a user with little parallel data meets: plenty of monolingual text, few pairs.
The monolingual text is both sides of Multi30k train, each side shuffled on its own so no
sentence sits beside its translation; the pairs are the first --pairs rows of train. A
Unigram tokenizer is trained on the monolingual text, a small T5 is pretrained on it with
span corruption (for --pretrain-steps steps, or else --pretrain-s seconds; no dropout; AdamW
with each matrix's rate scaled by its starting RMS, train.lr_by_rms, without which a small T5
stalls at the unigram plateau), then fine-tuned on the pairs; the same fine-tuning runs from
random init. Each init is fine-tuned at every learning rate of --lrs; the one with the best dev
BLEU is that init's result (test2016 is never used to choose). Both are decoded greedily and
scored with sacreBLEU. Every step is a plmkit CLI verb, so this is also an end-to-end check of
the T5 path. Finished fine-tuning runs in --work are reused, so `--inits` can split the work
between processes and a last run without it prints the whole table.

    python bench/translation.py [--pairs 10000] [--pretrain-steps 4000] [--finetune-steps 1500] [--lrs 1e-3,3e-4]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from plmkit.cli import main as plmkit
from plmkit.config import EvaluateConfig, GenerationConfig
from plmkit.serve.generator import Generator
from plmkit.stages import evaluate

MULTI30K = Path(__file__).resolve().parents[2] / "shared" / "data" / "multi30k"


def cli(*args: str) -> None:
    if plmkit(list(args)) != 0:
        raise SystemExit(f"plmkit {' '.join(args[:1])} failed")


def write_data(work: Path, pairs: int, seed: int) -> dict[str, Path]:
    def lines(name: str) -> list[str]:
        return (MULTI30K / name).read_text(encoding="utf-8").splitlines()

    rng = random.Random(seed)
    en, de = lines("train.en"), lines("train.de")
    mono = en[:] + de[:]
    rng.shuffle(mono)  # no sentence next to its translation
    files = {"mono": work / "mono.txt"}
    files["mono"].write_text("\n".join(mono) + "\n", encoding="utf-8")
    for split, src, tgt, limit in (("train", en, de, pairs), ("val", lines("val.en"), lines("val.de"), 0),
                                   ("test", lines("test2016.en"), lines("test2016.de"), 0)):
        rows = list(zip(src, tgt))[: limit or None]
        files[split] = work / f"{split}.jsonl"  # JSONL: a few Multi30k sentences hold a TAB
        files[split].write_text("".join(json.dumps({"source": a, "target": b}, ensure_ascii=False)
                                        + "\n" for a, b in rows), encoding="utf-8")
    return files


def pretrain(args: argparse.Namespace, files: dict[str, Path], work: Path, model: list[str]) -> None:
    """Tokenizer and shards from the monolingual text, then span-corruption pretraining."""
    line_docs = "corpus.doc_split=line"
    cli("tokenizer", f"inputs={files['mono']}", f"output={work / 'tok'}", "kind=unigram",
        f"vocab_size={args.vocab}", line_docs, "lowercase=false")
    cli("prepare", f"inputs={files['mono']}", f"tokenizer={work / 'tok'}", f"output={work / 'shards'}",
        "val_fraction=0.01", line_docs)
    budget = ([f"train.max_steps={args.pretrain_steps}"] if args.pretrain_steps else
              ["train.max_steps=1000000", f"train.max_time_s={args.pretrain_s}"])
    cli("pretrain", f"shards={work / 'shards'}", f"output={work / 'pre'}", "objective.kind=span",
        *model, "model.dropout=0.0", "objective.seq_len=64", "train.batch_size=64",
        f"train.lr={args.pretrain_lr}", "train.lr_by_rms=true", *budget,
        "train.warmup_fraction=0.05", "train.log_every=50", "train.eval_every=500",
        f"train.threads={args.threads}", f"train.seed={args.seed}")


PROBES = ["A dog <extra_id_0> through the water.", "Two men are <extra_id_0> on a bench.",
          "A woman in a red <extra_id_0> is walking down the street.",
          "Ein Mann <extra_id_0> auf einer Bank.", "Eine Frau mit einem <extra_id_0> Hut geht die Straße entlang."]


def probe_span_filling(model_dir: Path) -> None:
    """What the pretrained model writes for one masked span, sentinels shown (greedy)."""
    generator = Generator.load(model_dir, device="cpu")
    cfg = GenerationConfig(max_new_tokens=8, show_special_tokens=True)
    print("\nSpan filling by the pretrained model (greedy, 8 tokens):\n")
    for probe, out in zip(PROBES, generator.generate(PROBES, cfg), strict=True):
        print(f"- `{probe}` → `{out}`")


def finetune_once(work: Path, files: dict[str, Path], init: list[str], finetune: list[str], lr: str,
                  pairs: int) -> dict[str, float]:
    """Fine-tune one init at one rate and score test2016, or read the scores of a finished run."""
    run = work / f"{'pretrained' if init[0].startswith('init=') else 'random-init'}-{pairs}-lr{lr}"
    scores = run / "scores.json"
    if not scores.is_file():
        t0 = time.perf_counter()
        cli("finetune", *init, *finetune, f"train.lr={lr}", f"output={run}")
        fit_s = time.perf_counter() - t0
        test = evaluate.run(EvaluateConfig(model=str(run), file=str(files["test"]),
                                           output=str(run / "test.md"), batch_size=100))
        dev = json.loads((run / "summary.json").read_text())["dev"]
        result = {"dev": dev["bleu"], "bleu": test["bleu"], "chrf": test["chrf"], "secs": fit_s}
        scores.write_text(json.dumps(result) + "\n")
    return json.loads(scores.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="runs/bench-translation")
    parser.add_argument("--pairs", type=int, default=10000)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--pretrain-s", type=float, default=480)
    parser.add_argument("--pretrain-steps", type=int, default=0, help="a step budget instead of --pretrain-s")
    parser.add_argument("--pretrain-lr", type=float, default=3e-2, help="peak rate (× each matrix's RMS)")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--inits", default="pretrained,random init", help="which inits to fine-tune")
    parser.add_argument("--finetune-steps", type=int, default=1500)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lrs", default="1e-3", help="fine-tuning learning rates (comma-separated)")
    parser.add_argument("--finetune-dropout", type=float, default=0.0,
                        help="hidden and attention dropout while fine-tuning, for both inits")
    parser.add_argument("--reuse-pretrained", action="store_true",
                        help="keep WORK/pre from an earlier run with the same settings")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    files = write_data(work, args.pairs, args.seed)
    model = [f"model.hidden_size={args.hidden}", f"model.num_layers={args.layers}",
             "model.num_heads=4", f"model.head_dim={args.hidden // 4}",
             f"model.intermediate_size={4 * args.hidden}", "model.layer_norm_eps=1e-6",
             "model.dropout=0.1", "model.attention_dropout=0.0"]
    inits = args.inits.split(",")
    if args.reuse_pretrained and (work / "pre" / "summary.json").is_file():
        print(f"reusing the pretrained model in {work / 'pre'}")
    elif "pretrained" in inits:
        pretrain(args, files, work, model)
    finetune = ["task=seq2seq", f"train_file={files['train']}", f"dev_file={files['val']}",
                "table.text_column=source", "table.label_column=target", "max_length=64",
                "max_target_length=64", f"train.max_steps={args.finetune_steps}",
                "train.batch_size=32", "train.warmup_fraction=0.05",
                "train.log_every=50", f"train.seed={args.seed}", "generation.max_new_tokens=60",
                f"dropout={args.finetune_dropout}", f"train.threads={args.threads}"]  # same for both
    rows = []
    for name, init in (("pretrained", [f"init={work / 'pre'}"]),
                       ("random init", [f"tokenizer={work / 'tok'}", *model])):
        if name not in inits:
            continue
        for lr in args.lrs.split(","):
            rows.append({"init": name, "lr": lr, **finetune_once(work, files, init, finetune, lr, args.pairs)})
    pre = json.loads((work / "pre" / "summary.json").read_text()) if "pretrained" in inits else None
    budget = (f"span-corruption pretraining {pre['train_time_s']:.0f} s ({pre['steps']} steps, val loss "
              f"{pre['start']['val_lm_loss']:.2f} → {pre['end']['val_lm_loss']:.2f}, span-token accuracy "
              f"{pre['end'].get('val_span_acc', float('nan')):.3f}); " if pre else "")
    print(f"\nMulti30k en→de, {args.pairs:,} training pairs; T5 {args.hidden}×{args.layers}+{args.layers}, "
          f"vocab {args.vocab}; {budget}"
          f"fine-tuning {args.finetune_steps} steps, dropout {args.finetune_dropout}; greedy decoding\n")
    if pre:
        probe_span_filling(work / "pre")
    print("\n| init | lr | dev BLEU | test2016 BLEU | test2016 chrF | fine-tune s | chosen on dev |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | :---: |")
    for row in rows:
        best = max((r for r in rows if r["init"] == row["init"]), key=lambda r: r["dev"])
        print(f"| {row['init']} | {row['lr']} | {row['dev']:.1f} | {row['bleu']:.1f} | {row['chrf']:.1f} | "
              f"{row['secs']:.0f} | {'✓' if row is best else ''} |")


if __name__ == "__main__":
    main()
