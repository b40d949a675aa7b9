"""Data preparation speed: plmkit `prepare_shards` against the usual Hugging Face recipe.

Both sides start from the same plain text file (paragraphs one per line, documents separated
by blank lines, cut from the English Wikipedia extract) and the same WordPiece tokenizer,
trained here on a sample. The Hugging Face side is what Transformers' `run_mlm.py` does:
`load_dataset("text")`, a batched `.map` that tokenizes with a `PreTrainedTokenizerFast`,
then a second `.map` that concatenates and cuts 128-token blocks. plmkit also splits
sentences and keeps a sentence and document index, which that recipe throws away.

    .venv/bin/python bench/dataprep.py --mb 20 --workers 2

Prints a table and exits; results go to BENCHMARKS.md. Runs offline, in a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Both sides get their parallelism from processes, not from threads inside `tokenizers`.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from plmkit.config import CorpusConfig, PrepareConfig, TokenizerStageConfig  # noqa: E402
from plmkit.text.corpus import iter_documents  # noqa: E402
from plmkit.text.shards import prepare_shards  # noqa: E402
from plmkit.text.tokenizer import save_tokenizer  # noqa: E402
from plmkit.text.tokenizer_training import train_tokenizer  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ENWIKI = SHARED_DATA / "enwiki-extract" / "enwiki_part1.txt.xz"
BLOCK_SIZE = 128


def write_text(source: Path, target: Path, megabytes: float) -> int:
    """Write the first `megabytes` of the extract's documents as plain text; return the bytes."""
    budget, written = int(megabytes * 1e6), 0
    with open(target, "w", encoding="utf-8") as f:
        for doc in iter_documents([str(source)], CorpusConfig()):
            f.write(doc.text + "\n\n")
            written += len(doc.text.encode("utf-8")) + 2
            if written >= budget:
                break
    return written


def run_plmkit(text_file: Path, tok_dir: Path, out: Path, workers: int) -> tuple[int, float]:
    """Tokenize and pack with prepare_shards; return (tokens, seconds)."""
    start = time.perf_counter()
    header = prepare_shards(
        PrepareConfig(
            inputs=[str(text_file)],
            tokenizer=str(tok_dir),
            output=str(out),
            workers=workers,
            corpus=CorpusConfig(format="text", doc_split="blank_line"),
        ),
        progress=False,
    )
    seconds = time.perf_counter() - start
    return sum(split["tokens"] for split in header["splits"].values()), seconds


def group_texts(examples: dict[str, list[list[int]]]) -> dict[str, list[list[int]]]:
    """Concatenate a batch and cut it into BLOCK_SIZE blocks, dropping the remainder (run_mlm)."""
    concatenated = {key: [x for row in rows for x in row] for key, rows in examples.items()}
    total = len(next(iter(concatenated.values()))) // BLOCK_SIZE * BLOCK_SIZE
    return {
        key: [seq[i : i + BLOCK_SIZE] for i in range(0, total, BLOCK_SIZE)]
        for key, seq in concatenated.items()
    }


def run_hf(text_file: Path, tok_dir: Path, cache: Path, workers: int) -> tuple[int, float]:
    """Tokenize and group the run_mlm way with datasets; return (text tokens, seconds)."""
    from datasets import load_dataset
    from transformers import PreTrainedTokenizerFast

    start = time.perf_counter()
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(tok_dir))
    raw = load_dataset("text", data_files={"train": str(text_file)}, cache_dir=str(cache))

    def tokenize(examples: dict[str, list[str]]) -> dict:
        return tokenizer(examples["text"], return_special_tokens_mask=True)

    tokenized = raw["train"].map(
        tokenize,
        batched=True,
        num_proc=workers,
        remove_columns=["text"],
        load_from_cache_file=False,
    )
    grouped = tokenized.map(group_texts, batched=True, num_proc=workers, load_from_cache_file=False)
    seconds = time.perf_counter() - start
    n_blocks = len(grouped)
    # Text tokens, without [CLS]/[SEP], so both rows count the same thing (counted untimed).
    tokens = sum(len(m) - sum(m) for m in tokenized["special_tokens_mask"])
    print(f"hf: {n_blocks:,} blocks of {BLOCK_SIZE}", file=sys.stderr)
    return tokens, seconds


def _best(run: Callable[[int], tuple[int, float]], repeat: int) -> tuple[int, float]:
    """(tokens, fastest seconds) over `repeat` runs."""
    results = [run(i) for i in range(repeat)]
    return results[0][0], min(seconds for _, seconds in results)


def main() -> None:
    """Prepare the text and the tokenizer, time both methods, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=20.0, help="megabytes of text (default 20)")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="processes for both"
    )
    parser.add_argument("--vocab", type=int, default=8000, help="WordPiece vocabulary size")
    parser.add_argument("--repeat", type=int, default=1, help="runs per method; the best counts")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="plmkit-bench-") as tmp_name:
        tmp = Path(tmp_name)
        text_file = tmp / "corpus.txt"
        size = write_text(ENWIKI, text_file, args.mb)
        sample = [
            d.text for _, d in zip(range(500), iter_documents([str(text_file)], CorpusConfig()))
        ]
        tok_cfg = TokenizerStageConfig(vocab_size=args.vocab)
        save_tokenizer(
            train_tokenizer(sample, tok_cfg), tmp / "tok", lowercase=True, model_max_length=512
        )
        print(
            f"{size / 1e6:.1f} MB of text, vocab {args.vocab}, workers {args.workers}",
            file=sys.stderr,
        )

        shards, cache = tmp / "shards", tmp / "cache"
        plmkit = _best(
            lambda i: run_plmkit(text_file, tmp / "tok", shards / str(i), args.workers), args.repeat
        )
        hf = _best(
            lambda i: run_hf(text_file, tmp / "tok", cache / str(i), args.workers), args.repeat
        )
    rows = [("plmkit prepare_shards", *plmkit), ("HF datasets map + group_texts", *hf)]
    if plmkit[0] != hf[0]:
        print(f"warning: token counts differ ({plmkit[0]:,} vs {hf[0]:,})", file=sys.stderr)

    base = rows[1][1] / rows[1][2]
    print("| method | tokens | seconds | tokens/s | ratio |\n|---|---:|---:|---:|---:|")
    for name, tokens, seconds in rows:
        rate = tokens / seconds
        print(f"| {name} | {tokens:,} | {seconds:.1f} | {rate:,.0f} | {rate / base:.2f}x |")


if __name__ == "__main__":
    main()
