"""Causal LM and T5 span-corruption batches from real shards: exact resume, eos at document
boundaries, noise statistics, sentinel placement, inputs + targets = the original text, and the
losses and perplexity helper (checked against values known in closed form)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from plmkit.cli import main
from plmkit.config import ModelConfig
from plmkit.models.seq2seq import Seq2SeqLM
from plmkit.objectives import (
    CausalLMBatches,
    SpanCorruptionBatches,
    causal_lm_loss,
    corrupt_spans,
    evaluate_lm,
    span_corruption_loss,
    span_noise_mask,
)
from plmkit.runtime.errors import UserError
from plmkit.text.shards import ShardReader

EOS, PAD = 3, 0  # the WordPiece tokenizer's [SEP] and [PAD] stand in for eos and pad


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> ShardReader:
    """Shards of 60 kB of WikiText (about 60 documents) with a 1,000-piece vocabulary."""
    root = tmp_path_factory.mktemp("lm")
    text = (shared_data / "wikitext-103-eval" / "wiki.valid.tokens").read_text(encoding="utf-8")
    corpus = root / "corpus.txt"
    corpus.write_text(text[:60_000].replace(" \n \n", "\n\n"), encoding="utf-8")
    assert main(["tokenizer", f"inputs={corpus}", f"output={root / 'tok'}", "vocab_size=1000"]) == 0
    assert (
        main(
            [
                "prepare",
                f"inputs={corpus}",
                f"tokenizer={root / 'tok'}",
                f"output={root / 'shards'}",
                "workers=1",
            ]
        )
        == 0
    )
    return ShardReader(root / "shards")


def _stream(reader: ShardReader) -> np.ndarray:
    """The expected packed stream, built document by document: tokens, then eos."""
    parts = []
    for d in range(reader.num_documents):
        first, end = reader.doc_starts[d], reader.doc_starts[d + 1]
        parts += [reader.tokens[reader.sentence_starts[first] : reader.sentence_starts[end]], [EOS]]
    return np.concatenate(parts).astype(np.int64)


def _is_window(stream: np.ndarray, row: np.ndarray) -> bool:
    windows = np.lib.stride_tricks.sliding_window_view(stream, len(row))
    return bool((windows == row).all(axis=1).any())


def _sentinels(reader: ShardReader) -> list[int]:
    """T5's convention: 100 ids appended after the vocabulary, <extra_id_0> the highest."""
    vocab = int(reader.header["vocab_size"]) + 100
    return [vocab - 1 - k for k in range(100)]


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------- causal LM


def test_causal_windows_are_the_stream_with_eos_between_documents(reader) -> None:
    batches = CausalLMBatches(reader, eos_id=EOS, batch_size=16, seq_len=64, seed=1)
    stream = _stream(reader)
    assert batches.stream.length == len(stream)
    crossed = 0
    for _ in range(4):
        batch = batches.next_batch(0.0)
        assert batch["input_ids"].shape == batch["labels"].shape == (16, 64)
        assert torch.equal(batch["input_ids"][:, 1:], batch["labels"][:, :-1])
        for ids, labels in zip(batch["input_ids"], batch["labels"]):
            window = torch.cat([ids, labels[-1:]]).numpy()
            assert _is_window(stream, window)
            crossed += int((window == EOS).any())
    assert crossed > 0, "no window crossed a document boundary: the eos check saw nothing"


def test_causal_resume_mid_stream_gives_identical_batches(reader) -> None:
    first = CausalLMBatches(reader, eos_id=EOS, batch_size=4, seq_len=32, seed=7)
    first.next_batch(0.0)
    state = first.state_dict()
    expected = [first.next_batch(0.5) for _ in range(3)]
    resumed = CausalLMBatches(reader, eos_id=EOS, batch_size=4, seq_len=32, seed=123)
    resumed.load_state_dict(state)
    assert all(_same(a, resumed.next_batch(0.5)) for a in expected)


class _Uniform(nn.Module):
    """Equal logits for every token: the perplexity is exactly the vocabulary size."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab, self.zero = vocab, nn.Parameter(torch.zeros(()))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.zero + torch.zeros(*input_ids.shape, self.vocab)  # (B, T, V)


def test_perplexity_of_a_uniform_model_is_the_vocabulary_size(reader) -> None:
    batches = CausalLMBatches(reader, eos_id=EOS, batch_size=4, seq_len=16)
    held_out = [batches.next_batch(0.0) for _ in range(2)]
    metrics = evaluate_lm(_Uniform(1000), held_out, causal_lm_loss, torch.device("cpu"))
    assert metrics["val_ppl"] == pytest.approx(1000, rel=1e-5)
    assert metrics["val_lm_loss"] == pytest.approx(math.log(1000), rel=1e-6)


def test_causal_lm_loss_goes_down(reader) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(1000, 32), nn.Linear(32, 1000))  # a bigram model
    batches = CausalLMBatches(reader, eos_id=EOS, batch_size=16, seq_len=32)
    held_out = [batches.next_batch(0.0) for _ in range(2)]
    before = evaluate_lm(model, held_out, causal_lm_loss, torch.device("cpu"))["val_lm_loss"]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(40):
        loss, _ = causal_lm_loss(model, batches.next_batch(0.0))
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = evaluate_lm(model, held_out, causal_lm_loss, torch.device("cpu"))["val_lm_loss"]
    assert after < before - 1.0, f"val loss {before:.2f} → {after:.2f}"


def test_too_short_shards_are_a_user_error(reader) -> None:
    with pytest.raises(UserError, match="seq_len"):
        CausalLMBatches(reader, eos_id=EOS, batch_size=1, seq_len=10**9)


# ----------------------------------------------------------------------------- span corruption


def test_noise_statistics_over_many_windows() -> None:
    rng = np.random.Generator(np.random.PCG64(0))
    noise_tokens = total = spans = 0
    span_lengths = []
    for length in rng.integers(40, 600, size=400):
        mask = span_noise_mask(int(length), 0.15, 3.0, rng)
        assert not mask[0], "T5 starts every window with kept tokens"
        edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(int), [0]])))
        span_lengths += (edges[1::2] - edges[::2]).tolist()
        noise_tokens, total, spans = (
            noise_tokens + mask.sum(),
            total + length,
            spans + len(edges) // 2,
        )
    assert noise_tokens / total == pytest.approx(0.15, abs=0.002)
    assert noise_tokens / spans == pytest.approx(3.0, abs=0.1)
    assert min(span_lengths) == 1 and max(span_lengths) > 6  # lengths vary, not fixed at 3


def test_sentinels_and_eos_placement() -> None:
    tokens = np.arange(10, 20)
    noise = np.array([0, 0, 1, 1, 0, 0, 0, 1, 0, 1], dtype=bool)
    sentinels = np.array([99, 98, 97, 96])
    inputs, targets = corrupt_spans(tokens, noise, sentinels, eos_id=1)
    assert inputs.tolist() == [10, 11, 99, 14, 15, 16, 98, 18, 97, 1]
    assert targets.tolist() == [99, 12, 13, 98, 17, 97, 19, 1]


def _fill(inputs: list[int], targets: list[int], sentinels: set[int]) -> list[int]:
    """Put each target span back where its sentinel stands in the input (eos dropped)."""
    spans, current = {}, None
    for token in targets[:-1]:
        if token in sentinels:
            current = spans.setdefault(token, [])
        else:
            current.append(token)
    out = []
    for token in inputs[:-1]:
        out += spans[token] if token in sentinels else [token]
    return out


def test_span_batches_reconstruct_the_original_text(reader) -> None:
    sentinels = _sentinels(reader)
    batches = SpanCorruptionBatches(
        reader, sentinel_ids=sentinels, eos_id=EOS, pad_id=PAD, batch_size=8, seq_len=64, seed=3
    )
    stream, lookup = _stream(reader), set(sentinels)
    batch = batches.next_batch(0.0)
    assert batch["input_ids"].shape == (8, 64) and batch["labels"].shape[0] == 8
    for ids, mask, labels, dec in zip(
        batch["input_ids"], batch["attention_mask"], batch["labels"], batch["decoder_input_ids"]
    ):
        inputs, targets = ids[mask.bool()].tolist(), labels[labels != -100].tolist()
        assert inputs[-1] == EOS and targets[-1] == EOS
        assert len(inputs) <= 64 and targets[0] == sentinels[0]
        used = [t for t in targets if t in lookup]
        assert used == sentinels[: len(used)] == [t for t in inputs if t in lookup]
        original = _fill(inputs, targets, lookup)
        assert len(original) == batches.raw_len and _is_window(stream, np.asarray(original))
        assert dec[0] == PAD and torch.equal(dec[1:], labels[:-1].clamp(min=PAD))
    # span_labels: the same targets with the layout (sentinels, eos) masked out, nothing else.
    span, labels = batch["span_labels"], batch["labels"]
    layout = torch.isin(labels, torch.tensor(sentinels + [EOS]))
    assert torch.equal(span[~layout], labels[~layout]) and (span[layout] == -100).all()
    assert (span != -100).sum() == batches.target_len * 8 - int(layout.sum())


def test_span_resume_mid_stream_gives_identical_batches(reader) -> None:
    kwargs = dict(sentinel_ids=_sentinels(reader), eos_id=EOS, pad_id=PAD, batch_size=4, seq_len=48)
    first = SpanCorruptionBatches(reader, **kwargs, seed=5)
    first.next_batch(0.0)
    state = first.state_dict()
    expected = [first.next_batch(0.5) for _ in range(3)]
    resumed = SpanCorruptionBatches(reader, **kwargs, seed=99)
    resumed.load_state_dict(state)
    assert all(_same(a, resumed.next_batch(0.5)) for a in expected)


def test_too_few_sentinels_is_a_user_error(reader) -> None:
    with pytest.raises(UserError, match="sentinel"):
        SpanCorruptionBatches(
            reader, sentinel_ids=[999], eos_id=EOS, pad_id=PAD, batch_size=1, seq_len=128
        )


def test_span_corruption_loss_goes_down(reader) -> None:
    sentinels = _sentinels(reader)
    cfg = ModelConfig(
        family="t5",
        vocab_size=sentinels[0] + 1,
        hidden_size=32,
        num_layers=1,
        num_heads=2,
        intermediate_size=64,
        activation="relu",
        dropout=0.0,
        attention_dropout=0.0,
        layer_norm_eps=1e-6,
        pad_token_id=PAD,
    )
    torch.manual_seed(0)
    model = Seq2SeqLM(cfg)
    batches = SpanCorruptionBatches(
        reader, sentinel_ids=sentinels, eos_id=EOS, pad_id=PAD, batch_size=8, seq_len=48
    )
    held_out = [batches.next_batch(0.0) for _ in range(2)]
    cpu = torch.device("cpu")
    before = evaluate_lm(model, held_out, span_corruption_loss, cpu)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(40):
        loss, _ = span_corruption_loss(model, batches.next_batch(0.0))
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = evaluate_lm(model, held_out, span_corruption_loss, cpu)
    assert after["val_lm_loss"] < before["val_lm_loss"] - 1.0, f"{before} → {after}"
    assert after["val_ppl"] == pytest.approx(math.exp(after["val_lm_loss"]))
    assert 0.0 <= after["val_span_acc"] < after["val_lm_acc"]  # the layout is the easy part
