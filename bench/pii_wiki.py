"""The PII scrubber's hits on Wikipedia text, where real personal data is rare: each hit is
listed for a person to read, so false hits can be counted and their causes seen.

    PYTHONPATH=. python bench/pii_wiki.py [--lines 10000] [--skip 0] [--hits-out /tmp/pii_wiki_hits.tsv]

Reads the first N text lines (after --skip ones; WikiExtractor's `<doc>`/`</doc>` tag lines and blank lines left
out) of ../shared/data/enwiki-extract and ../shared/data/zhwiki-extract, scrubs each line with
plmkit.text.pii, prints a Markdown table of hits per kind per language and the speed, and writes
every hit (language, line number in the decompressed file, kind, matched text, context) as TSV.
"""

from __future__ import annotations

import argparse
import lzma
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from plmkit.text.pii import KINDS, count_kinds, find_pii

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SOURCES = {
    "en": DATA / "enwiki-extract" / "enwiki_part1.txt.xz",
    "zh": DATA / "zhwiki-extract" / "zhwiki_part1.txt.xz",
}
CONTEXT = 40  # characters of context on each side of a hit in the hits file


def text_lines(path: Path, limit: int, skip: int = 0) -> Iterator[tuple[int, str]]:
    """(line number, line) of `limit` text lines after the first `skip`: no <doc> tags, no blanks."""
    taken, skipped = 0, 0
    with lzma.open(path, "rt", encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            line = line.rstrip("\n")
            if not line.strip() or line.startswith(("<doc ", "</doc>")):
                continue
            if skipped < skip:
                skipped += 1
                continue
            yield number, line
            taken += 1
            if taken == limit:
                return


def _clean(text: str) -> str:
    return text.replace("\t", " ")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=10_000, help="text lines per language")
    parser.add_argument("--skip", type=int, default=0, help="text lines to pass over first")
    parser.add_argument("--hits-out", default="/tmp/pii_wiki_hits.tsv", help="every hit, as TSV")
    args = parser.parse_args()
    rows, hits = {}, ["lang\tline\tkind\tmatched\tcontext"]
    for lang, path in SOURCES.items():
        if not path.is_file():
            print(f"{path}: missing (see ../shared/data/README.md)", file=sys.stderr)
            return 1
        totals, chars, n_lines, seconds = dict.fromkeys(KINDS, 0), 0, 0, 0.0
        for number, line in text_lines(path, args.lines, args.skip):
            start = time.perf_counter()
            spans = find_pii(line)
            seconds += time.perf_counter() - start
            chars += len(line)
            n_lines += 1
            for kind, count in count_kinds(spans).items():
                totals[kind] += count
            for s in spans:
                context = line[max(0, s.start - CONTEXT) : s.start] + "⟦" + line[s.start : s.end] + "⟧"
                context += line[s.end : s.end + CONTEXT]
                hits.append(f"{lang}\t{number}\t{s.kind}\t{_clean(line[s.start:s.end])}\t{_clean(context)}")
        rows[lang] = (n_lines, chars, totals, seconds)
    Path(args.hits_out).write_text("\n".join(hits) + "\n", encoding="utf-8")

    print("| language | lines | characters | " + " | ".join(KINDS) + " | all hits | scrub speed |")
    print("|---|--:|--:|" + "--:|" * len(KINDS) + "--:|--:|")
    for lang, (n_lines, chars, totals, seconds) in rows.items():
        cells = " | ".join(str(totals[k]) for k in KINDS)
        speed = chars / max(seconds, 1e-9) / 1e6
        print(f"| {lang} | {n_lines:,} | {chars:,} | {cells} | {sum(totals.values())} | "
              f"{speed:.1f} M chars/s |")
    print(f"\n{len(hits) - 1} hits listed in {args.hits_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
