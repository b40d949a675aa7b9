"""Tagged sentences for token classification: CoNLL-style column files and JSONL → `TaggedSentence`s.

Where it sits: `read_tagged` is what tasks/ner/features.py encodes; every error names file:line before
any tokenizing, as tasks/tables.py does for labelled rows (and with its UTF-8 reader).

Column files hold one word per line, blank lines between sentences and optional `-DOCSTART-`
lines between documents; the word and tag columns are configurable (CoNLL-2003: word first,
tag last; MSRA: character and tag). Columns are split on ASCII spaces and tabs only, so a word
that is itself a full-width space (U+3000, common in Chinese text) survives. JSONL rows are
{"tokens": [...], "tags": [...]}.

Key choice: a sentence keeps its words, not a source text, and its text is the words joined by
one separator: a space, or nothing when every word of the file is a single character (a
character-level file such as Chinese NER). Entity character offsets refer to that text. The
cost: the original spacing of a tokenized English file (e.g. "U.S ." vs "U.S.") is not known
and is not recovered.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from plmkit.config import TagConfig
from plmkit.runtime.errors import UserError
from plmkit.tasks.ner.schemes import check_scheme, check_tag, convert_tags
from plmkit.tasks.tables import json_objects, read_utf8

DOCSTART = "-DOCSTART-"
_Row = tuple[list[str], list[str] | None, int]  # words, tags (None: untagged), first line
_COLUMNS = re.compile(r"[ \t]+")
FORMATS = ("auto", "columns", "jsonl")
_RAW_WORDS = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[^\W_]+|\S", re.UNICODE)


@dataclass(frozen=True)
class TaggedSentence:
    """One sentence: its words, their tags (None when unlabelled), and where it came from."""

    words: tuple[str, ...]
    tags: tuple[str, ...] | None
    line: int  # 1-based line of the first word (column files) or of the JSON row
    source: str = ""
    separator: str = " "  # how the words join into `text`
    one_word_per_line: bool = True  # column files: word i is on line `line + i`
    raw: str | None = None  # a raw text the words were cut from (`from_text`), else None
    spans: tuple[tuple[int, int], ...] = ()  # with `raw`: each word's [start, end) in it

    @classmethod
    def from_text(cls, text: str, line: int) -> TaggedSentence:
        """An untagged sentence cut from raw text by one rule: each CJK character a word, each
        run of letters or digits a word, any other non-space character a word; entity offsets
        then point into `text` exactly as given."""
        words = list(_RAW_WORDS.finditer(text))
        if not words:
            raise UserError(f"predict: text {line} is empty")
        return cls(tuple(m.group() for m in words), None, line, raw=text,
                   spans=tuple(m.span() for m in words))

    def where(self, word: int) -> str:
        """FILE:LINE of word number `word` (0-based), for error messages."""
        if self.one_word_per_line:
            return f"{self.source}:{self.line + word}"
        return f"{self.source}:{self.line}: word {word + 1}"

    @property
    def text(self) -> str:
        """The text entity offsets refer to: the raw text, else the words joined by the separator."""
        return self.raw if self.raw is not None else self.separator.join(self.words)

    def word_offsets(self) -> list[tuple[int, int]]:
        """[start, end) of each word in `text`."""
        if self.raw is not None:
            return list(self.spans)
        offsets, position = [], 0
        for word in self.words:
            offsets.append((position, position + len(word)))
            position += len(word) + len(self.separator)
        return offsets


def read_tagged(
    path: str | Path,
    *,
    scheme: str = "bio",
    token_column: int = 0,
    tag_column: int = -1,
    file_format: str = "auto",
    need_tags: bool = True,
    separator: str | None = None,
    limit: int = 0,
) -> list[TaggedSentence]:
    """Sentences of a column file or JSONL file, tags checked against `scheme`; `separator`
    joins words into text (None: "" when every word of the file is one character, else " ")."""
    check_scheme(scheme)
    if file_format not in FORMATS:
        raise UserError(f"tagged file format '{file_format}': use one of {', '.join(FORMATS)}")
    path = Path(path)
    text = read_utf8(path)
    if not text.strip():
        raise UserError(f"{path}: the file is empty")
    jsonl = file_format == "jsonl" or (
        file_format == "auto" and path.suffix.lower() in (".jsonl", ".json")
    )
    if jsonl:
        rows = _jsonl_rows(path, text, need_tags)
    else:
        rows = _column_rows(path, text, token_column, tag_column, need_tags)
    sentences: list[_Row] = []
    for words, tags, line in rows:
        for offset, tag in enumerate(tags or ()):
            where = f"{path}:{line}: tag {offset + 1}" if jsonl else f"{path}:{line + offset}"
            check_tag(tag, scheme, where)
        sentences.append((words, tags, line))
        if limit and len(sentences) >= limit:
            break
    if not sentences:
        raise UserError(f"{path}: no sentences (only blank or {DOCSTART} lines)")
    if separator is None:
        single = all(len(word) == 1 for words, _, _ in sentences for word in words)
        separator = "" if single else " "
    return [
        TaggedSentence(
            tuple(words),
            None if tags is None else tuple(tags),
            line,
            str(path),
            separator,
            not jsonl,
        )
        for words, tags, line in sentences
    ]


def retag(sentences: list[TaggedSentence], scheme: str) -> list[TaggedSentence]:
    """The same sentences with their entities written in `scheme` (e.g. MSRA's BMES → BIO)."""
    check_scheme(scheme)
    return [
        s if s.tags is None else replace(s, tags=tuple(convert_tags(s.tags, scheme)))
        for s in sentences
    ]


def _column_rows(
    path: Path, text: str, token_column: int, tag_column: int, need_tags: bool
) -> Iterator[_Row]:
    """(words, tags or None, first line) per sentence of a column file."""
    words: list[str] = []
    tags: list[str] = []
    start, width, width_line = 0, 0, 0
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r").strip(" \t")
        fields = _COLUMNS.split(line) if line else []
        if not fields or fields[0] == DOCSTART:
            if words:
                yield words, tags if tags else None, start
            words, tags = [], []
            continue
        if width == 0:
            width, width_line = len(fields), number
            _check_columns(path, number, width, token_column, tag_column, need_tags)
        if len(fields) != width:
            raise UserError(
                f"{path}:{number}: expected {width} columns (as on line {width_line}, the file's "
                f"first word line), found {len(fields)}"
            )
        if not words:
            start = number
        words.append(fields[token_column])
        if width > 1:
            tags.append(fields[tag_column])
    if words:
        yield words, tags if tags else None, start


def _check_columns(
    path: Path, line: int, width: int, token_column: int, tag_column: int, need_tags: bool
) -> None:
    if not -width <= token_column < width:
        raise UserError(
            f"{path}:{line}: token column {token_column}, but lines have {width} columns"
        )
    if width == 1 and need_tags:
        raise UserError(f"{path}:{line}: one column only (words, no tags), but tags are needed")
    if width > 1 and not -width <= tag_column < width:
        raise UserError(f"{path}:{line}: tag column {tag_column}, but lines have {width} columns")
    if width > 1 and token_column % width == tag_column % width:
        raise UserError(f"{path}:{line}: the token and tag columns are the same column")


def _jsonl_rows(path: Path, text: str, need_tags: bool) -> Iterator[_Row]:
    """(words, tags or None, line) per non-blank line of {"tokens": [...], "tags": [...]}."""
    for number, record in json_objects(path, text, "a JSON object with 'tokens' and 'tags'"):
        words = _string_list(path, number, record, "tokens")
        if not words:
            raise UserError(f"{path}:{number}: 'tokens' is empty")
        tags = _string_list(path, number, record, "tags") if "tags" in record else None
        if tags is None and need_tags:
            raise UserError(f"{path}:{number}: no 'tags' (tags are needed)")
        if tags is not None and len(tags) != len(words):
            raise UserError(f"{path}:{number}: {len(words)} tokens but {len(tags)} tags")
        yield words, tags, number


def _string_list(path: Path, line: int, record: dict, key: str) -> list[str]:
    value = record.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise UserError(f"{path}:{line}: '{key}' must be a list of non-empty strings")
    return value


def read_tagged_file(path: str | Path, tags: TagConfig, *, need_tags: bool = True,
                     limit: int = 0) -> list[TaggedSentence]:
    """Tagged sentences of `path` as `tags` says, in the model's scheme."""
    sentences = read_tagged(path, scheme=tags.scheme, token_column=tags.token_column,
                            tag_column=tags.tag_column, file_format=tags.format,
                            need_tags=need_tags, separator=tags.separator, limit=limit)
    return retag(sentences, tags.model_scheme) if tags.model_scheme else sentences
