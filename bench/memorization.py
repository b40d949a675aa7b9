"""Memorization: exposure of planted canaries in a tiny GPT, by repetition count, with and
without PII scrubbing (Carlini et al., 2019, "The Secret Sharer").

    OMP_NUM_THREADS=1 PYTHONPATH=. python bench/memorization.py [--docs 200] [--steps 1000]

Takes the first --docs articles of ../shared/data/enwiki-extract, trains one byte-level BPE
tokenizer on them, then for each run: `plmkit prepare` with 40 canaries (10 at each of
1, 4, 16 and 64 copies), `plmkit pretrain recipes/gpt-tiny-cpu.yaml` made smaller (SMALL:
hidden 128, 2 layers, 64-token windows, so a shared 2-core box trains it in minutes) for
--steps steps (the same in every run, so runs differ only in their canaries and scrubbing),
and `plmkit probe memorization` against 10,000 random candidates. Runs:
  digits         "my secret number is {digits:9}"              scrub_pii=false
  phone          "my phone number is 13{digits:9}" (PII-shaped) scrub_pii=false
  phone+scrub    the same canaries                              scrub_pii=true
Prints one Markdown table (mean exposure per repetition count per run) and exits. Work files
go to --work (kept, so `--only phone+scrub` reruns one run on the same tokenizer).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from time_to_quality import head_of_wiki  # noqa: E402

from plmkit.cli import main as plmkit  # noqa: E402
from plmkit.config.privacy import MemorizationConfig  # noqa: E402
from plmkit.probes.memorization import run as probe  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ENWIKI = DATA / "enwiki-extract" / "enwiki_part1.txt.xz"
RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "gpt-tiny-cpu.yaml"
SMALL = ["model.hidden_size=128", "model.num_layers=2", "model.num_heads=2",
         "model.intermediate_size=512", "objective.seq_len=64"]
RUNS = {
    "digits": ("my secret number is {digits:9}", False),
    "phone": ("my phone number is 13{digits:9}", False),
    "phone+scrub": ("my phone number is 13{digits:9}", True),
}


def cli(*args: str) -> None:
    code = plmkit(list(args))
    if code != 0:
        raise SystemExit(f"plmkit {' '.join(args)} exited {code}")


def one_run(work: Path, name: str, text: Path, steps: int) -> tuple[list[dict], float]:
    """prepare → pretrain → probe for one run; (summary rows, pretraining seconds)."""
    template, scrub = RUNS[name]
    tag = name.replace("+", "-")
    shards, model = work / f"shards-{tag}", work / f"gpt-{tag}"
    extra = ["scrub_pii=true"] if scrub else []
    cli("prepare", str(RECIPE), f"inputs={text}", f"tokenizer={work / 'tok'}", f"output={shards}",
        "overwrite=true", "workers=1", "canaries=40", "canary_repeats=[1,4,16,64]",
        f"canary_format={template}", *extra)
    start = time.perf_counter()
    cli("pretrain", str(RECIPE), f"shards={shards}", f"output={model}", "overwrite=true",
        *SMALL, f"train.max_steps={steps}", "train.max_time_s=0", "train.save_every=100000")
    trained = time.perf_counter() - start
    _, summary = probe(MemorizationConfig(model=str(model), shards=str(shards), candidates=10000,
                                          output=str(work / f"probe-{tag}.md")))
    return summary, trained


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=200, help="enwiki articles in the corpus")
    parser.add_argument("--steps", type=int, default=1000, help="pretraining steps per run")
    parser.add_argument("--work", type=Path, default=Path("/tmp/plmkit-bench-memorization"))
    parser.add_argument("--only", nargs="*", choices=list(RUNS), default=list(RUNS))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    text = head_of_wiki(ENWIKI, args.work / f"enwiki-{args.docs}.txt", args.docs)
    if not (args.work / "tok" / "tokenizer.json").is_file():
        cli("tokenizer", str(RECIPE), f"inputs={text}", f"output={args.work / 'tok'}")
    table = []
    for name in args.only:
        summary, trained = one_run(args.work, name, text, args.steps)
        table += [{"run": name, "pretrain_s": round(trained), **row} for row in summary]
    print("\n| run | pretrain s | repeats | canaries | log-ppl (bits) | exposure (fit) "
          "| exposure (empirical, ≤ 13.3) |\n|---|--:|--:|--:|--:|--:|--:|")
    for r in table:
        print(f"| {r['run']} | {r['pretrain_s']} | {r['repeats']} | {r['canaries']} | "
              f"{r['log_ppl_bits']:.1f} | {r['exposure']:.2f} | {r['exposure_empirical']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
