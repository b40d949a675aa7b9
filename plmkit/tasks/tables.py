"""Labelled tables: TSV, CSV and JSONL rows → validated `Example`s, every error naming file:line.

Shared by every task family that reads labelled rows (classification today; matching, NER and
QA readers reuse the same checks). Files are read whole and validated before any tokenizing,
so a bad row 60,000 lines in fails in a second with its file, line and column, not an hour
into training; the cost is holding the text in memory, fine for labelled sets (SST-2 train is
4 MB), wrong for pretraining corpora (those stream through text/corpus.py). TSV is read with
quoting off: GLUE files hold stray `"` that a quoting reader would swallow into one giant field.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from plmkit.config import TableConfig
from plmkit.runtime.errors import UserError

TASKS = ("classification", "regression", "seq2seq")  # seq2seq: the "label" is the target text
FORMATS = {".tsv": "tsv", ".txt": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}


@dataclass(frozen=True)
class Example:
    """One labelled row: the text (and pair), its label, and where it came from."""

    text: str
    text_pair: str | None
    label: str | float | None
    line: int  # 1-based line in the file (with a header, the first data row is line 2)
    source: str = ""  # the file, so later errors (an unknown label) can name file:line


# ----------------------------------------------------------------------------- reading files


def read_table(
    path: str | Path,
    table: TableConfig,
    *,
    task: str = "classification",
    need_label: bool = True,
    limit: int = 0,
) -> list[Example]:
    """Read labelled rows from a TSV, CSV or JSONL file; any bad row is a UserError naming it."""
    check_task(task)
    path = Path(path)
    fmt = _table_format(path, table.format)
    text = read_utf8(path)
    if not text.strip():
        raise UserError(f"{path}: the file is empty")
    required = [c for c in (table.text_column, table.text_pair_column) if c is not None]
    if need_label:
        required.append(table.label_column)
    if fmt == "jsonl":
        records = _json_records(path, text, required)
    else:
        records = _delimited_records(path, text, fmt, table.header, required)
    examples = []
    for line, record in records:
        examples.append(_example(path, line, record, table, task, need_label))
        if limit and len(examples) >= limit:
            break
    if not examples:
        raise UserError(f"{path}: no data rows (only a header?)")
    return examples


def check_task(task: str) -> None:
    if task not in TASKS:
        raise UserError(f"task '{task}': use one of {', '.join(TASKS)}")


def _table_format(path: Path, fmt: str) -> str:
    if fmt == "auto":
        if path.suffix.lower() not in FORMATS:
            raise UserError(
                f"{path}: cannot tell the format from the suffix '{path.suffix}'; "
                "set table.format to tsv, csv or jsonl"
            )
        return FORMATS[path.suffix.lower()]
    if fmt not in ("tsv", "csv", "jsonl"):
        raise UserError(f"table.format '{fmt}': use auto, tsv, csv or jsonl")
    return fmt


def read_utf8(path: Path) -> str:
    if not path.is_file():
        raise UserError(f"{path}: file not found" + (" (it is a folder)" if path.is_dir() else ""))
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - data.rfind(b"\n", 0, err.start)
        raise UserError(
            f"{path}:{line}: not valid UTF-8 (byte 0x{data[err.start]:02x} at byte column "
            f"{column}); re-save the file as UTF-8"
        ) from None
    return text.removeprefix("\ufeff")  # Excel and GLUE's MRPC start with a byte-order mark


def _delimited_records(
    path: Path, text: str, fmt: str, header: bool, required: list[str]
) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, {column: value}) per non-blank row; header or numbered column names."""
    if fmt == "tsv":
        reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        reader = csv.reader(io.StringIO(text, newline=""))
    rows = _rows_with_lines(path, reader, fmt)
    names: list[str] | None = None
    if header:
        first = next(rows, None)
        if first is None:
            raise UserError(f"{path}: the file is empty")
        names = [name.strip() for name in first[1]]
        _require_columns(path, 1, names, required, "")
    for line, row in rows:
        if names is None:
            names = [str(i) for i in range(len(row))]
            _require_columns(
                path, line, names, required, " (no header: columns are numbered from 0)"
            )
        if len(row) != len(names):
            raise UserError(
                f"{path}:{line}: expected {len(names)} {fmt.upper()} columns, found {len(row)}"
            )
        yield line, dict(zip(names, row, strict=True))


def _rows_with_lines(path: Path, reader, fmt: str) -> Iterator[tuple[int, list[str]]]:
    """Rows with the line each starts on (a quoted CSV field may span lines); blank rows skipped."""
    end = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise UserError(f"{path}:{reader.line_num}: not valid {fmt.upper()} ({err})") from None
        start, end = end + 1, reader.line_num
        if row:
            yield start, row


def _require_columns(
    path: Path, line: int, names: list[str], required: list[str], hint: str
) -> None:
    for column in required:
        if column not in names:
            raise UserError(
                f"{path}:{line}: no column '{column}' (columns: {', '.join(names)}){hint}"
            )


def json_objects(path: Path, text: str, expected: str = "a JSON object") -> Iterator[tuple[int, dict]]:
    """(line number, object) per non-blank line of a JSON-lines file; a line that is not a JSON
    object is an error naming the file and line (`expected` says what it should have been)."""
    for line, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as err:
            raise UserError(
                f"{path}:{line}: not valid JSON ({err.msg} at column {err.colno})"
            ) from None
        if not isinstance(record, dict):
            raise UserError(f"{path}:{line}: expected {expected}, got {type(record).__name__}")
        yield line, record


def _json_records(path: Path, text: str, required: list[str]) -> Iterator[tuple[int, dict]]:
    """(line, object) per non-blank line of a JSON-lines table, with its required columns."""
    for line, record in json_objects(path, text):
        _require_columns(path, line, list(record), required, "")
        yield line, record


def _example(
    path: Path, line: int, record: dict, table: TableConfig, task: str, need_label: bool
) -> Example:
    text = _text_field(path, line, record, table.text_column)
    pair = None
    if table.text_pair_column is not None:
        pair = _text_field(path, line, record, table.text_pair_column)
    raw = _as_text(record.get(table.label_column)).strip()
    label: str | float | None = raw or None
    if not raw and need_label:
        raise UserError(f"{path}:{line}: column '{table.label_column}' is empty (no label)")
    if raw and task == "regression":
        try:
            label = float(raw)
        except ValueError:
            label = math.nan
        if not math.isfinite(label):
            raise UserError(
                f"{path}:{line}: column '{table.label_column}': '{raw}' is not a finite number "
                "(task is regression)"
            )
    return Example(text, pair, label, line, str(path))


def _text_field(path: Path, line: int, record: dict, column: str) -> str:
    text = _as_text(record.get(column))
    if not text.strip():
        raise UserError(f"{path}:{line}: column '{column}' is empty (no text)")
    return text


def _as_text(value: object) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
