"""Corpus → packed token shards on disk, and the memory-mapped reader every trainer uses.

`prepare_shards` streams documents (corpus.py) and sends chunks of about a megabyte of text
to worker processes, which split sentences and tokenize them (encode.SentenceEncoder: the
tokenizer's own ids, produced through a word cache) and return numpy arrays; the main process
appends them to one flat file per split. Chunks come back in the order they were sent and at
most two per worker are in flight, so the files are identical whatever the number of workers
and memory stays flat however large the corpus is. Everything is written to a temporary
directory that replaces the output only on success.

On disk, for each split (`train`, `val`; a document's split is fixed by a hash of its text,
so it does not move when the corpus grows or the workers change):
  {split}.bin   token ids, uint16 (vocab ≤ 65535) or uint32, sentences back to back
  {split}.idx   int64 little-endian sentence starts, n_sentences + 1 entries (last = n_tokens)
  {split}.docs  int64 little-endian document starts in sentences, n_documents + 1 entries
  {split}.words (word_boundaries=jieba) uint8 per token, 1 where a jieba word starts
  header.json   format, dtype, vocabulary, tokenizer hash and path, special ids, counts, and
                (scrub_pii=true) how many e-mails, phones, ... each kind text/pii.py replaced
  tokenizer/    a copy of the tokenizer, so the folder is self-contained
Plain arrays cost a little disk over a compressed format, and buy zero-copy `np.memmap` reads
and a format any tool can open.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np
from tqdm import tqdm

from plmkit.config import PrepareConfig
from plmkit.runtime.console import progress_interval
from plmkit.runtime.errors import UserError
from plmkit.runtime.files import atomic_dir
from plmkit.text.canaries import planted_texts, write_canaries
from plmkit.text.corpus import in_fraction, resolve_inputs, split_sentences
from plmkit.text.encode import SentenceEncoder
from plmkit.text.pii import count_kinds, scrub
from plmkit.text.tokenizer import (
    copy_tokenizer_files,
    load_tokenizer,
    token_roles,
    tokenizer_dir,
    tokenizer_sha256,
)
from plmkit.text.words import check_word_boundaries, encode_with_word_starts

FORMAT_VERSION = 1
SPLITS = ("train", "val")
_CHUNK_CHARS = 1 << 20  # text per worker task: large enough to amortise pickling and IPC
_IN_FLIGHT_PER_WORKER = 2  # bounds memory; two keeps every worker busy while one result is written


class _Part(NamedTuple):
    """One split's share of a chunk: token ids, sentence lengths, sentences per document, and
    (with word boundaries) one word-start byte per token."""

    tokens: np.ndarray
    sentence_lengths: np.ndarray
    doc_sentences: np.ndarray
    word_starts: np.ndarray | None = None


# ----------------------------------------------------------------------------- worker side

_worker_args: tuple[SentenceEncoder, np.dtype, float, bool, bool] | None = None  # set in each pool process


def _init_worker(
    tok_dir: str, dtype: str, val_fraction: float, words: bool = False, scrub_pii: bool = False
) -> None:
    """Load the tokenizer once per pool process; each tokenizes on one thread."""
    global _worker_args
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # the parallelism comes from processes
    _worker_args = (SentenceEncoder(load_tokenizer(tok_dir)), np.dtype(dtype), val_fraction, words,
                    scrub_pii)


def _worker_encode(texts: list[str]) -> tuple[tuple[_Part, ...], dict[str, int]]:
    assert _worker_args is not None, "pool process not initialised"
    return _encode_chunk(texts, *_worker_args)


def _encode_chunk(
    texts: list[str], encoder: SentenceEncoder, dtype: np.dtype, val_fraction: float,
    words: bool = False, scrub_pii: bool = False,
) -> tuple[tuple[_Part, ...], dict[str, int]]:
    """Split and tokenize a chunk of documents; return one part per split, empty ones dropped,
    and (scrub_pii) how many PII spans of each kind placeholders replaced before tokenizing."""
    pii: dict[str, int] = {}
    if scrub_pii:
        scrubbed = [scrub(text) for text in texts]
        texts = [text for text, _ in scrubbed]
        pii = count_kinds([span for _, spans in scrubbed for span in spans])
    sentences: list[str] = []
    per_doc = np.empty(len(texts), dtype=np.int64)
    for d, text in enumerate(texts):
        doc = split_sentences(text)
        sentences.extend(doc)
        per_doc[d] = len(doc)
    if words:  # jieba's word starts need each token's offsets: the tokenizer's own encoding
        ids, lengths, word_starts = encode_with_word_starts(encoder.tok, sentences)
    else:
        (ids, lengths), word_starts = encoder(sentences), None
    flat = ids.astype(dtype)

    doc_of_sentence = np.repeat(np.arange(len(texts)), per_doc)
    kept = lengths > 0  # a sentence of only control characters tokenizes to nothing
    kept_per_doc = np.bincount(doc_of_sentence[kept], minlength=len(texts))
    val = np.fromiter((in_fraction(t, val_fraction) for t in texts), dtype=bool, count=len(texts))
    parts = []
    for in_val in (False, True):
        doc_mask = (val == in_val) & (kept_per_doc > 0)
        sentence_mask = kept & doc_mask[doc_of_sentence]
        token_mask = np.repeat(sentence_mask, lengths)
        parts.append(
            _Part(
                tokens=flat[token_mask],
                sentence_lengths=lengths[sentence_mask],
                doc_sentences=kept_per_doc[doc_mask],
                word_starts=None if word_starts is None else word_starts[token_mask],
            )
        )
    return tuple(parts), pii


# ----------------------------------------------------------------------------- main side


def _chunks(texts: Iterable[str]) -> Iterator[list[str]]:
    chunk: list[str] = []
    size = 0
    for text in texts:
        chunk.append(text)
        size += len(text)
        if size >= _CHUNK_CHARS:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def _fork_context() -> multiprocessing.context.BaseContext:
    # fork starts workers in milliseconds with plmkit already imported; elsewhere spawn is safe.
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    return multiprocessing.get_context(method)


@contextlib.contextmanager
def _quiet_fork() -> Iterator[None]:
    """Tell `tokenizers` its parallelism is configured while forking, so it does not warn."""
    before = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        yield
    finally:
        if before is None:
            del os.environ["TOKENIZERS_PARALLELISM"]
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = before


@contextlib.contextmanager
def _worker_pool(
    workers: int, init_args: tuple[str, str, float, bool, bool]
) -> Iterator[ProcessPoolExecutor | None]:
    """A started pool of `workers` processes, or None for 1 (tokenize in this process)."""
    if workers == 1:
        yield None
        return
    pool = ProcessPoolExecutor(workers, _fork_context(), _init_worker, init_args)
    try:
        with _quiet_fork():
            pool.submit(os.getpid).result()  # start the processes now, inside the quiet block
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _encoded(
    chunks: Iterator[list[str]],
    pool: ProcessPoolExecutor | None,
    workers: int,
    init_args: tuple[str, str, float, bool, bool],
) -> Iterator[tuple[int, tuple[_Part, ...], dict[str, int]]]:
    """(documents, parts, PII counts) per chunk, in input order, at most 2 per worker in flight."""
    if pool is None:
        tok_dir, dtype, val_fraction, words, scrub_pii = init_args
        encoder = SentenceEncoder(load_tokenizer(tok_dir))
        for chunk in chunks:
            yield len(chunk), *_encode_chunk(chunk, encoder, np.dtype(dtype), val_fraction, words,
                                             scrub_pii)
        return
    pending: deque[tuple[int, Future]] = deque()
    for chunk in chunks:
        pending.append((len(chunk), pool.submit(_worker_encode, chunk)))
        if len(pending) >= workers * _IN_FLIGHT_PER_WORKER:
            n, future = pending.popleft()
            yield n, *future.result()
    while pending:
        n, future = pending.popleft()
        yield n, *future.result()


class _SplitWriter:
    """Appends one split's parts to its .bin/.idx/.docs files, keeping only running totals."""

    def __init__(self, directory: Path, split: str, words: bool = False) -> None:
        self.bin = open(directory / f"{split}.bin", "wb")
        self.idx = open(directory / f"{split}.idx", "wb")
        self.docs = open(directory / f"{split}.docs", "wb")
        self.words = open(directory / f"{split}.words", "wb") if words else None
        self.tokens = self.sentences = self.documents = 0

    def append(self, part: _Part) -> None:
        """Write one chunk's share: tokens, then its sentence and document starts."""
        part.tokens.tofile(self.bin)
        if self.words is not None:
            part.word_starts.tofile(self.words)
        starts = self.tokens + np.cumsum(part.sentence_lengths) - part.sentence_lengths
        starts.astype("<i8").tofile(self.idx)
        doc_starts = self.sentences + np.cumsum(part.doc_sentences) - part.doc_sentences
        doc_starts.astype("<i8").tofile(self.docs)
        self.tokens += int(part.sentence_lengths.sum())
        self.sentences += len(part.sentence_lengths)
        self.documents += len(part.doc_sentences)

    def close(self) -> dict[str, int]:
        """Write the final index entries (the totals), close the files, return the counts."""
        np.array([self.tokens], dtype="<i8").tofile(self.idx)
        np.array([self.sentences], dtype="<i8").tofile(self.docs)
        for f in (self.bin, self.idx, self.docs, self.words):
            if f is not None:
                f.close()
        return {"tokens": self.tokens, "sentences": self.sentences, "documents": self.documents}


def _write_splits(
    directory: Path, chunks: Iterator[tuple[int, tuple[_Part, ...], dict[str, int]]],
    progress: bool, words: bool = False,
) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """Append every encoded chunk to the split files in `directory`; return the counts per split
    and the PII replaced per kind, summed over the chunks (and so over the worker processes)."""
    writers = {split: _SplitWriter(directory, split, words) for split in SPLITS}
    bar = tqdm(
        desc="prepare",
        unit=" docs",
        file=sys.stderr,
        disable=not progress,
        mininterval=progress_interval(),
    )
    start, tokens, pii_total = time.perf_counter(), 0, count_kinds([])
    try:
        for n_docs, parts, pii in chunks:
            for kind, count in pii.items():
                pii_total[kind] += count
            for split, part in zip(SPLITS, parts, strict=True):
                writers[split].append(part)
                tokens += len(part.tokens)
            bar.update(n_docs)
            rate = tokens / max(time.perf_counter() - start, 1e-9)
            bar.set_postfix_str(f"{tokens:,} tokens, {rate:,.0f} tokens/s", refresh=False)
    finally:
        bar.close()
        counts = {split: w.close() for split, w in writers.items()}
    return counts, pii_total


def prepare_shards(cfg: PrepareConfig, *, progress: bool = True) -> dict:
    """Tokenize cfg.inputs into packed train/val shards in cfg.output; return the header."""
    if not 0.0 <= cfg.val_fraction < 1.0:
        raise UserError(f"config val_fraction: {cfg.val_fraction} must be in [0, 1)")
    if cfg.workers < 0:
        raise UserError(f"config workers: {cfg.workers} must be 0 (all cores) or more")
    tok_dir = tokenizer_dir(cfg.tokenizer).resolve()
    tok = load_tokenizer(tok_dir)
    vocab_size = tok.get_vocab_size(with_added_tokens=True)
    dtype = "uint16" if vocab_size <= 65535 else "uint32"
    specials = token_roles(tok)
    check_word_boundaries(cfg.word_boundaries, tok, str(tok_dir))
    words = cfg.word_boundaries != "none"
    resolve_inputs(cfg.inputs)  # fail on a missing input before any work
    workers = cfg.workers or os.cpu_count() or 1
    init_args = (str(tok_dir), dtype, cfg.val_fraction, words, cfg.scrub_pii)
    texts, canaries = planted_texts(cfg)  # canaries go in first, so any later scrubbing sees them
    chunks = _chunks(texts)

    with atomic_dir(cfg.output, verb="prepare") as tmp, _worker_pool(workers, init_args) as pool:
        counts, pii = _write_splits(tmp, _encoded(chunks, pool, workers, init_args), progress, words)
        copy_tokenizer_files(tok_dir, tmp / "tokenizer")
        header = {
            "format_version": FORMAT_VERSION,
            "dtype": dtype,
            "vocab_size": vocab_size,
            "tokenizer_sha256": tokenizer_sha256(tmp / "tokenizer"),
            "tokenizer": str(tok_dir),
            "special_ids": specials.header(),
            "val_fraction": cfg.val_fraction,
            "word_boundaries": cfg.word_boundaries,
            "splits": counts,
            **({"pii": pii} if cfg.scrub_pii else {}),
        }
        (tmp / "header.json").write_text(json.dumps(header, indent=2) + "\n", encoding="utf-8")
        if canaries:
            write_canaries(tmp, canaries, cfg.canary_format, seed=cfg.canary_seed,
                           scrub_pii=bool(getattr(cfg, "scrub_pii", False)))
    return header


# ----------------------------------------------------------------------------- reading


def check_tokenizer(directory: str | Path, tokenizer: str | Path) -> None:
    """Refuse a tokenizer other than the one the shards in `directory` were encoded with (their
    header's tokenizer_sha256): its ids would mean other tokens."""
    recorded = _read_header(Path(directory)).get("tokenizer_sha256")
    found = tokenizer_sha256(tokenizer)
    if recorded and found != recorded:
        raise UserError(f"{tokenizer}: tokenizer.json (sha256 {found[:12]}…) is not the one "
                        f"{directory} was encoded with (sha256 {recorded[:12]}…); re-run prepare")


def _read_header(directory: Path) -> dict:
    if not directory.is_dir():
        raise UserError(f"{directory}: no such shards directory (create it with `plmkit prepare`)")
    path = directory / "header.json"
    try:
        header = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(
            f"{path}: missing; {directory} is not a finished shards directory"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not valid JSON ({err})") from None
    if header.get("format_version") != FORMAT_VERSION:
        raise UserError(
            f"{path}: format_version {header.get('format_version')!r}, this plmkit reads {FORMAT_VERSION}"
        )
    return header


def _map(path: Path, dtype: np.dtype, count: int) -> np.ndarray:
    """Read-only memory map of `count` items, after checking the file has exactly that size."""
    if not path.is_file():
        raise UserError(f"{path}: missing from the shards directory")
    expected, actual = count * dtype.itemsize, path.stat().st_size
    if actual != expected:
        raise UserError(
            f"{path}: {actual} bytes but header.json implies {expected}; the shard is truncated "
            "or from another run (re-run `plmkit prepare`)"
        )
    if count == 0:
        empty = np.zeros(0, dtype=dtype)
        empty.flags.writeable = False
        return empty
    return np.memmap(path, dtype=dtype, mode="r", shape=(count,))


class ShardReader:
    """Memory-mapped view of one split: tokens, sentence starts and document starts."""

    def __init__(self, directory: str | Path, split: str = "train") -> None:
        directory = Path(directory)
        self.header = _read_header(directory)
        splits = self.header.get("splits", {})
        if split not in splits:
            raise UserError(f"{directory}: no split '{split}' (have: {', '.join(splits)})")
        counts = splits[split]
        self.num_tokens = int(counts["tokens"])
        self.num_sentences = int(counts["sentences"])
        self.num_documents = int(counts["documents"])
        index = np.dtype("<i8")
        self.tokens = _map(
            directory / f"{split}.bin", np.dtype(self.header["dtype"]), self.num_tokens
        )
        self.sentence_starts = _map(directory / f"{split}.idx", index, self.num_sentences + 1)
        self.doc_starts = _map(directory / f"{split}.docs", index, self.num_documents + 1)
        self.words = None  # one byte per token, 1 where a word starts (word_boundaries=jieba)
        if self.header.get("word_boundaries", "none") != "none":
            self.words = _map(directory / f"{split}.words", np.dtype("u1"), self.num_tokens)
        if self.sentence_starts[-1] != self.num_tokens or self.doc_starts[-1] != self.num_sentences:
            raise UserError(f"{directory}: {split}.idx or {split}.docs disagrees with header.json")

    def sentence(self, i: int) -> np.ndarray:
        """Token ids of sentence `i` (a view into the memory map)."""
        return self.tokens[self.sentence_starts[i] : self.sentence_starts[i + 1]]

    def doc_sentences(self, d: int) -> range:
        """Sentence indices of document `d`."""
        return range(int(self.doc_starts[d]), int(self.doc_starts[d + 1]))
