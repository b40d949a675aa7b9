"""`plmkit scrub inputs=… output=DIR`: scrubbed copies of text files, and a report of what went.

input files → each line through text/pii.scrub → DIR/<the same relative name> (compressed alike),
with DIR/report.json (counts per kind, per file and in all), DIR/report.md (the same as tables)
and, with hits=true, DIR/hits.jsonl (file, line, kind, offsets in the raw line, matched text) for a
person to check what went. Names are relative to the folder all inputs share.

Lines are scrubbed one at a time, so memory stays flat however large a file is; the cost is that
a span broken across two lines is not found, and that line ends come out as \\n. Everything is
written into a temporary folder that becomes DIR only once every file has been read whole: a
file that is not UTF-8 text stops the run with one line naming the file and line, and nothing is
written.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import IO

from tqdm import tqdm

from plmkit.config import ScrubConfig
from plmkit.runtime.console import print0, progress_interval
from plmkit.runtime.errors import UserError
from plmkit.runtime.files import atomic_dir
from plmkit.runtime.outputs import MARKER, claim_output
from plmkit.text.corpus import open_text_for_writing, read_lines, resolve_inputs
from plmkit.text.pii import KINDS, PLACEHOLDERS, count_kinds, scrub

REPORTS = ("report.json", "report.md", "hits.jsonl", MARKER)


def relative_names(files: list[Path]) -> dict[Path, str]:
    """Each file's name relative to the folder all of them share (a single file: its own name)."""
    resolved = list(dict.fromkeys(f.resolve() for f in files))
    root = Path(os.path.commonpath([f.parent for f in resolved]))
    names = {f: f.relative_to(root).as_posix() for f in resolved}
    for name in names.values():
        if name in REPORTS:
            raise UserError(f"{root / name}: an input named {name} would collide with the "
                            "report scrub writes; rename it or scrub its folder's files apart")
    return names


def _scrub_file(path: Path, name: str, target: Path, hits: IO[str] | None) -> dict:
    """Write the scrubbed copy of `path` to `target`; return its line count and PII per kind."""
    counts, lines = count_kinds([]), 0
    target.parent.mkdir(parents=True, exist_ok=True)
    bar = tqdm(desc=f"scrub {name}", unit=" lines", file=sys.stderr, delay=2.0,
               mininterval=progress_interval())
    with open_text_for_writing(target) as out, bar:
        for lines, line in read_lines(path):  # noqa: B007 (lines is the count afterwards)
            text, spans = scrub(line)
            out.write(text + "\n")
            for span in spans:
                counts[span.kind] += 1
                if hits is not None:
                    hits.write(json.dumps({
                        "file": name, "line": lines, "kind": span.kind, "start": span.start,
                        "end": span.end, "text": line[span.start : span.end],
                    }, ensure_ascii=False) + "\n")
            bar.update()
    return {"lines": lines, "pii": counts}


def report_markdown(files: dict[str, dict], total: dict[str, int]) -> str:
    """report.md: one row per file, one column per kind, and the total."""
    head = "| file | lines | " + " | ".join(f"{k} `{PLACEHOLDERS[k]}`" for k in KINDS) + " | all |"
    rows = [head, "|---|--:|" + "--:|" * len(KINDS) + "--:|"]
    for name, entry in files.items():
        cells = " | ".join(str(entry["pii"][k]) for k in KINDS)
        rows.append(f"| {name} | {entry['lines']:,} | {cells} | {sum(entry['pii'].values())} |")
    lines = sum(entry["lines"] for entry in files.values())
    rows.append(f"| **all** | {lines:,} | " + " | ".join(str(total[k]) for k in KINDS)
                + f" | {sum(total.values())} |")
    return ("# PII scrubbed by `plmkit scrub`\n\nSpans replaced by their placeholder, per kind "
            "(text/pii.py says what each kind matches).\n\n" + "\n".join(rows) + "\n")


def run(cfg: ScrubConfig) -> Path:
    """Write scrubbed copies of `cfg.inputs` and the report into `cfg.output`."""
    if not cfg.inputs:
        raise UserError("scrub: no inputs given (e.g. inputs=notes.txt or inputs=folder/)")
    names = relative_names(resolve_inputs(cfg.inputs))
    claim_output(cfg.output, "scrub", cfg.inputs, replace=cfg.overwrite)
    files: dict[str, dict] = {}
    with atomic_dir(cfg.output, verb="scrub") as tmp:
        hits = open(tmp / "hits.jsonl", "w", encoding="utf-8") if cfg.hits else None
        try:
            for path, name in names.items():
                files[name] = _scrub_file(path, name, tmp / name, hits)
        finally:
            if hits is not None:
                hits.close()
        total = count_kinds([])
        for entry in files.values():
            for kind, count in entry["pii"].items():
                total[kind] += count
        report = {"kinds": PLACEHOLDERS, "total": total, "files": files}
        (tmp / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n",
                                         encoding="utf-8")
        (tmp / "report.md").write_text(report_markdown(files, total), encoding="utf-8")
    found = ", ".join(f"{total[k]} {k}" for k in KINDS if total[k]) or "no PII found"
    print0(f"scrub: {len(files)} file(s), {found} → {cfg.output} (report.md)")
    return Path(cfg.output)
