"""Can the data loader keep a GPU busy? Batches per second of the pretraining batch sources on
one CPU core, against the rate the issue's GPU targets would consume.

The trainer builds the next batch on the CPU while the GPU still runs the current step (copies
are non-blocking, metrics stay on the device), so the GPU waits for data only if one batch
takes longer to build than one step takes to run. This reads real shards (the English
Wikipedia extract, tokenized once into --work) and times `next_batch` of BERT's MLM source (with
and without NSP) and GPT's causal-LM source at the issue's shapes.

    python bench/loader_speed.py                      # builds the shards on first use (~1 min)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from plmkit.config import PrepareConfig, TokenizerStageConfig
from plmkit.objectives.clm import CausalLMBatches
from plmkit.objectives.mlm import MaskingSpec, PretrainBatches
from plmkit.stages import prepare, tokenizer
from plmkit.text.shards import ShardReader
from plmkit.text.tokenizer import load_tokenizer, special_ids

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
# tokens/s a GPU step consumes at the goals on an H100: 2 × Transformers eager BERT-base
# (2 × 330k) and 1.3 × Transformers compiled GPT-2 (1.3 × 363k)
TARGETS = {"bert": 660_000, "gpt": 472_000}


def shards(work: Path, source: str) -> Path:
    """WordPiece tokenizer and shards of the extract, made once under `work`."""
    tok, out = work / "tokenizer", work / "shards"
    if not (tok / "tokenizer.json").is_file():
        tokenizer.run(
            TokenizerStageConfig(
                inputs=[source], output=str(tok), vocab_size=30522, max_documents=20000
            )
        )
    if not (out / "manifest.json").is_file():
        prepare.run(PrepareConfig(inputs=[source], tokenizer=str(tok), output=str(out)))
    return out


def rate(source: object, batches: int) -> tuple[float, float]:
    """(batches/s, real tokens/s) of `source.next_batch` after one warm-up batch."""
    source.next_batch(1.0)
    tokens, started = 0, time.perf_counter()
    for _ in range(batches):
        batch = source.next_batch(1.0)
        mask = batch.get("attention_mask")
        tokens += int(mask.sum()) if mask is not None else batch["input_ids"].numel()
    seconds = time.perf_counter() - started
    return batches / seconds, tokens / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--enwiki", default=str(DATA / "enwiki-extract" / "enwiki_part1.txt.xz"))
    parser.add_argument("--work", default="runs/loader-speed")
    parser.add_argument("--batches", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(1)
    directory = shards(Path(args.work), args.enwiki)
    reader = ShardReader(directory, "train")
    tok = load_tokenizer(directory)
    sources = []
    for nsp, mask_prob in ((False, 0.25), (True, 0.15)):
        masking = MaskingSpec(special_ids(tok), tok.get_vocab_size(), mask_prob)
        sources.append(
            (
                f"BERT MLM{' + NSP' if nsp else ''} 256×128, mask {mask_prob}",
                "bert",
                PretrainBatches(reader, masking, batch_size=256, seq_len=128, nsp=nsp),
            )
        )
    eos = special_ids(tok).sep
    sources.append(
        ("GPT CLM 32×1024", "gpt", CausalLMBatches(reader, eos_id=eos, batch_size=32, seq_len=1024))
    )
    print(f"one CPU core, {args.batches} batches each, shards {directory}\n")
    print("| batch source | batches/s | tokens/s | GPU target tokens/s | headroom |")
    print("|---|---:|---:|---:|---:|")
    for name, family, source in sources:
        per_s, tokens_per_s = rate(source, args.batches)
        target = TARGETS[family]
        print(
            f"| {name} | {per_s:.1f} | {tokens_per_s:,.0f} | {target:,} | "
            f"{tokens_per_s / target:.1f}× |"
        )


if __name__ == "__main__":
    main()
