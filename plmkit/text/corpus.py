"""Raw text → documents → sentences: the first step of every text stage.

`iter_documents` streams documents out of files, folders and globs in plain text, JSON lines
or WikiExtractor `<doc>` format, reading `.xz`/`.gz`/`.bz2` transparently, one line at a
time, so a corpus never has to fit in memory. Decoding takes Python's fast text-mode path;
only when it fails do we re-read the file in binary to name the offending line, so the error
costs a second pass but the common case costs nothing.

`split_sentences` is a regular-expression splitter for English and Chinese/Japanese. It is
meant for building NSP pairs and sentence-packed shards, where speed matters more than the
last percent of accuracy a trained segmenter would give; its known misses are abbreviations
outside its list and sentence ends before a lower-case word.
"""

from __future__ import annotations

import bz2
import glob
import gzip
import hashlib
import json
import lzma
import re
import unicodedata
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from plmkit.config import CorpusConfig
from plmkit.runtime.errors import UserError

_OPENERS = {".xz": lzma.open, ".gz": gzip.open, ".bz2": bz2.open}
_FORMATS = ("auto", "text", "jsonl", "wiki")
_DOC_SPLITS = ("blank_line", "line", "file")
_NORMALIZE = ("NFKC", "NFC", "none")


@dataclass(frozen=True)
class Document:
    """One document: its text, the file it came from and the 1-based line where it starts."""

    text: str
    source: str
    line: int


# ----------------------------------------------------------------------------- inputs


def resolve_inputs(inputs: list[str]) -> list[Path]:
    """Expand files, folders (recursively, sorted, skipping hidden files) and globs into files."""
    if not inputs:
        raise UserError("no inputs given: name at least one file, folder or glob")
    files: list[Path] = []
    for spec in inputs:
        path = Path(spec).expanduser()
        if path.exists():
            matches = [path]
        elif any(ch in spec for ch in "*?["):
            matches = [Path(m) for m in sorted(glob.glob(str(path), recursive=True))]
            if not matches:
                raise UserError(f"{spec}: glob matches no files")
        else:
            raise UserError(f"{spec}: no such file or directory")
        for match in matches:
            if match.is_dir():
                found = sorted(
                    p
                    for p in match.rglob("*")
                    if p.is_file()
                    and not any(part.startswith(".") for part in p.relative_to(match).parts)
                )
                if not found and len(matches) == 1:
                    raise UserError(f"{spec}: folder holds no files")
                files.extend(found)
            else:
                files.append(match)
    return files


def _open_text(path: Path) -> IO[str]:
    opener = _OPENERS.get(path.suffix.lower(), open)
    return opener(path, "rt", encoding="utf-8-sig", newline=None)  # type: ignore[operator]


def _bad_utf8_line(path: Path) -> tuple[int, str]:
    """Re-read `path` in binary to find the first line that is not UTF-8 (the slow path)."""
    opener = _OPENERS.get(path.suffix.lower(), open)
    with opener(path, "rb") as f:  # type: ignore[operator]
        for number, raw in enumerate(f, start=1):
            if number == 1 and raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
                return 1, "it is UTF-16: its first bytes are a UTF-16 byte-order mark"
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as err:
                return number, f"byte 0x{raw[err.start]:02x} at column {err.start + 1}"
    return 0, "truncated multi-byte character at the end"


def _nul_problem(line: str) -> str:
    """Why a line holding NUL characters is refused: UTF-16 without a BOM, or binary data."""
    column = line.index("\x00") + 1
    ascii_utf16 = len(line) > 3 and line.count("\x00") * 2 >= len(line.rstrip("\n")) - 1
    if ascii_utf16:
        return ("NUL bytes between the characters: this looks like UTF-16 without a byte-order "
                "mark; re-encode the file as UTF-8")
    return f"NUL byte at column {column}: not a text file (binary data?)"


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its newline), with errors turned into UserError."""
    number = 0
    try:
        with _open_text(path) as f:
            for number, line in enumerate(f, start=1):  # noqa: B007 (number is used below)
                if "\x00" in line:
                    raise UserError(f"{path}:{number}: {_nul_problem(line)}")
                yield number, line.rstrip("\n")
    except UnicodeDecodeError:
        bad, where = _bad_utf8_line(path)
        raise UserError(
            f"{path}:{bad}: not valid UTF-8 ({where}); re-encode the file as UTF-8"
        ) from None
    except (OSError, EOFError, lzma.LZMAError, zlib.error) as err:  # corrupt archives
        raise UserError(f"{path}: cannot read after line {number} ({err})") from None


def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its newline) of a UTF-8 text file, .xz/.gz/.bz2 read
    through; bad UTF-8, NUL bytes or a corrupt archive raise UserError naming the file and line."""
    return _lines(path)


def open_text_for_writing(path: Path) -> IO[str]:
    """`path` opened for writing UTF-8 text with \\n line ends, compressed as its suffix says."""
    opener = _OPENERS.get(path.suffix.lower(), open)
    return opener(path, "wt", encoding="utf-8", newline="\n")  # type: ignore[operator]


# ----------------------------------------------------------------------------- formats


def _detect(path: Path, first: str) -> str:
    name = path.name.lower()
    for suffix in _OPENERS:
        name = name.removesuffix(suffix)
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    return "wiki" if first.lstrip().startswith("<doc ") else "text"


def _text_docs(lines: Iterator[tuple[int, str]], doc_split: str) -> Iterator[tuple[int, str]]:
    if doc_split == "line":
        for number, line in lines:
            if line.strip():
                yield number, line
        return
    start, buf = 0, []
    for number, line in lines:
        if doc_split == "file" or line.strip():
            if not buf:
                start = number
            buf.append(line)
        elif buf:
            yield start, "\n".join(buf)
            buf = []
    if buf:
        yield start, "\n".join(buf)


def _jsonl_docs(
    lines: Iterator[tuple[int, str]], path: Path, field: str
) -> Iterator[tuple[int, str]]:
    for number, line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(
                f"{path}:{number}: not valid JSON ({err.msg} at column {err.colno})"
            ) from None
        if not isinstance(record, dict) or field not in record:
            keys = ", ".join(sorted(record)) if isinstance(record, dict) else type(record).__name__
            raise UserError(
                f"{path}:{number}: no field '{field}' (found: {keys}); set corpus.text_field"
            )
        text = record[field]
        if not isinstance(text, str):
            raise UserError(
                f"{path}:{number}: field '{field}' is {type(text).__name__}, not a string"
            )
        yield number, text


_TITLE = re.compile(r'\btitle="')


def _wiki_docs(lines: Iterator[tuple[int, str]], path: Path) -> Iterator[tuple[int, str]]:
    """WikiExtractor output: keep body paragraphs as lines, drop the title line and empty docs."""
    start, buf, drop_title = 0, [], False
    inside = False
    for number, line in lines:
        if line.startswith("<doc ") or line == "<doc>":
            start, buf, inside = number, [], True
            drop_title = bool(_TITLE.search(line))
        elif line.startswith("</doc>"):
            if buf:
                yield start, "\n".join(buf)
            buf, inside = [], False
        elif inside and line.strip():
            if drop_title:
                drop_title = False
            else:
                buf.append(line)
    if inside:
        raise UserError(f"{path}:{start}: <doc> opened here is never closed by </doc>")


# ----------------------------------------------------------------------------- documents


def _check(cfg: CorpusConfig) -> None:
    for field, value, allowed in (
        ("corpus.format", cfg.format, _FORMATS),
        ("corpus.doc_split", cfg.doc_split, _DOC_SPLITS),
        ("corpus.normalize", cfg.normalize, _NORMALIZE),
    ):
        if value not in allowed:
            raise UserError(f"config {field}: '{value}' is not one of {', '.join(allowed)}")


def _file_docs(path: Path, cfg: CorpusConfig) -> Iterator[tuple[int, str]]:
    lines = _lines(path)
    head: list[tuple[int, str]] = []
    for item in lines:  # peek up to the first non-blank line to detect the format
        head.append(item)
        if item[1].strip():
            break
    fmt = cfg.format if cfg.format != "auto" else _detect(path, head[-1][1] if head else "")

    def replay() -> Iterator[tuple[int, str]]:
        yield from head
        yield from lines

    if fmt == "jsonl":
        return _jsonl_docs(replay(), path, cfg.text_field)
    if fmt == "wiki":
        return _wiki_docs(replay(), path)
    return _text_docs(replay(), cfg.doc_split)


def iter_documents(inputs: list[str], cfg: CorpusConfig) -> Iterator[Document]:
    """Stream the documents of `inputs`; raises UserError at the end if there were none."""
    _check(cfg)
    files = resolve_inputs(inputs)
    form = None if cfg.normalize == "none" else cfg.normalize
    count = 0
    for path in files:
        source = str(path)
        for line, text in _file_docs(path, cfg):
            if form is not None:
                text = unicodedata.normalize(form, text)
            text = text.strip()
            if len(text) < max(cfg.min_chars, 1):
                continue
            count += 1
            yield Document(text, source, line)
    if count == 0:
        shown = ", ".join(inputs[:3]) + (" …" if len(inputs) > 3 else "")
        raise UserError(f"no text found in {shown} (min_chars={cfg.min_chars})")


# ----------------------------------------------------------------------------- sentences

# Words that end with a period without ending a sentence (compared lower-cased, period removed).
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st mt ft vs etc al fig figs no nos vol vols inc ltd co corp "
    "jan feb mar apr jun jul aug sep sept oct nov dec gen col lt sgt capt gov sen rep rev "
    "est approx dept univ ca cf op ed eds pp".split()
)
# English: . ! ? (plus closing quotes/brackets), then whitespace and a capital, digit or quote.
_EN_END = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s+[\"'“‘(\[]?[A-Z0-9])")
_INITIALS = re.compile(r"(?:[A-Za-z]\.)+")  # U.S. e.g. i.e. J.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# Chinese/Japanese: full-width enders, or the ASCII forms NFKC turns them into after a CJK
# character; closing quotes and brackets stay with the sentence. No space is needed after.
_CJK_HINT = re.compile(f"[{_CJK}。！？；…]")  # cheap test before the slower _CJK_END scan
_CJK_END = re.compile(rf"(?:[。！？；…]+|[{_CJK}](?:[!?;]+|\.{{3,}}))[”’」』）)》】\"']*(?=.)")


def _is_abbreviation(text: str, end: re.Match) -> bool:
    """Whether a single period matched by _EN_END ends an abbreviation rather than a sentence."""
    dot = end.start()
    if text[dot] != "." or end.group().count(".") != 1:
        return False
    start = max(text.rfind(" ", 0, dot), text.rfind("\n", 0, dot)) + 1
    word = text[start : dot + 1].lstrip("\"'“‘([")
    return _INITIALS.fullmatch(word) is not None or word[:-1].lower() in _ABBREVIATIONS


def split_sentences(text: str) -> list[str]:
    """Split a document into sentences (English and CJK rules; each line is at least one)."""
    cuts = [m.end() for m in _EN_END.finditer(text) if not _is_abbreviation(text, m)]
    if not text.isascii() and _CJK_HINT.search(text):
        cuts += [m.end() for m in _CJK_END.finditer(text)]
        cuts.sort()
    pieces = [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)])] if cuts else [text]
    return [s for piece in pieces for line in piece.split("\n") if (s := line.strip())]


def in_fraction(text: str, fraction: float) -> bool:
    """A stable split of documents: the text's hash, read as a number in [0, 1), below `fraction`
    (the shards' val split; the tokenizer's held-out slice). It never moves as a corpus grows."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64 < fraction
