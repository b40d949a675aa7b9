"""Run metrics a user can read: data-wait share, MFU against a hand count, peak memory, and the
curves and TensorBoard events every run writes (read back with tensorboard's own reader)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from matplotlib.image import imread
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from plmkit.cli import main
from plmkit.config import ModelConfig
from plmkit.models.decoder import CausalLM
from plmkit.models.heads import SequenceClassifier
from plmkit.runtime.errors import UserError
from plmkit.train import log, throughput
from plmkit.train.trainer import fit

from .toy import ToyBatches, ToyNet, toy_config, toy_loss

TINY = ModelConfig(vocab_size=50, hidden_size=8, num_layers=2, num_heads=2, intermediate_size=16,
                   max_position=16, dropout=0.0, attention_dropout=0.0)
WIKI = Path(__file__).resolve().parents[3] / "shared/data/wikitext-103-eval/wiki.valid.tokens"


class SlowBatches(ToyBatches):
    """Toy batches that take 30 ms each to arrive: a data loader slower than the model."""

    def next_batch(self, progress: float) -> dict[str, torch.Tensor]:
        time.sleep(0.03)
        return super().next_batch(progress)


def test_a_slow_batch_source_shows_a_data_wait_share_above_half(tmp_path):
    result = fit(ToyNet(), SlowBatches(8, tokens=True), toy_loss,
                 toy_config(max_steps=6, log_every=3), tmp_path)
    rows = [r for r in log.read_rows(tmp_path) if r["split"] == "train"]
    assert [r["step"] for r in rows] == [3, 6]
    for row in rows:
        assert row["data_wait"] > 0.5, row
        assert row["tokens_per_s"] > 0 and row["peak_memory_mib"] > 0
        assert "mfu" not in row  # a CPU without train.peak_flops has no peak to divide by
    assert result.throughput["data_wait"] > 0.5
    assert result.throughput["peak_memory_is"] == "process peak RSS"


def test_a_fast_batch_source_waits_little(tmp_path):
    fit(ToyNet(), ToyBatches(8, tokens=True), toy_loss, toy_config(max_steps=40, log_every=20),
        tmp_path)
    assert all(r["data_wait"] < 0.5 for r in log.read_rows(tmp_path) if r["split"] == "train")


def test_model_flops_per_token_match_a_hand_count():
    # BERT classifier, hidden 8, 2 layers, 2 heads of width 4, feed-forward 16, per layer:
    #   qkv 8·24 + 24 = 216, out 8·8 + 8 = 72, attention LayerNorm 16,
    #   up 8·16 + 16 = 144, down 16·8 + 8 = 136, feed-forward LayerNorm 16      → 600
    # plus the embedding LayerNorm 16, the pooler 8·8 + 8 = 72, the classifier 8·2 + 2 = 18;
    # the word (50·8), position (16·8) and segment (2·8) tables are not counted.
    n_bert = 2 * 600 + 16 + 72 + 18  # 1306
    attention = 2 * (2 * 4)  # L·H·Q = 16
    assert throughput.model_shape(SequenceClassifier(TINY, num_labels=2)) == (n_bert, attention)
    # 6·N + 12·L·H·Q·T at T = 6: 6·1306 + 12·16·6 = 7836 + 1152
    assert throughput.flops_per_token(n_bert, attention, 6) == 8988
    # GPT, same shape: per block LayerNorm 16 + qkv 216 + out 72 + LayerNorm 16 + up 144 + down
    # 136 = 600, plus the final LayerNorm 16; the output projection is the word table (tied)
    assert throughput.model_shape(CausalLM(TINY)) == (2 * 600 + 16, attention)


def test_mfu_in_the_log_is_the_hand_counted_flops_over_the_peak(tmp_path):
    """Batches of 4 rows × 6 columns with 3 padding positions: 21 real tokens a step."""
    mask = torch.ones(4, 6, dtype=torch.long)
    mask[0, 4:], mask[1, 5:] = 0, 0

    class Batches(ToyBatches):
        def next_batch(self, progress: float) -> dict[str, torch.Tensor]:
            ids = torch.randint(1, 50, (4, 6), generator=torch.Generator().manual_seed(self.position))
            self.position += 1
            return {"input_ids": ids, "attention_mask": mask, "labels": ids[:, 0] % 2}

    def loss_fn(model, batch):
        return F.cross_entropy(model(batch["input_ids"], batch["attention_mask"]), batch["labels"]), {}

    peak = 1e10
    fit(SequenceClassifier(TINY, num_labels=2), Batches(4), loss_fn,
        toy_config(max_steps=20, log_every=10, peak_flops=peak), tmp_path)
    rows = [r for r in log.read_rows(tmp_path) if r["split"] == "train"]
    assert len(rows) == 2
    for row in rows:
        window_s = 10 * 21 / row["tokens_per_s"]  # 10 steps of 21 tokens
        assert row["mfu"] == pytest.approx(10 * 21 * 8988 / window_s / peak, rel=1e-3)
        assert 0 < row["mfu"] < 1


def test_peak_flops_must_be_positive(tmp_path):
    with pytest.raises(UserError, match=r"train\.peak_flops: must be > 0"):
        fit(ToyNet(), ToyBatches(8), toy_loss, toy_config(peak_flops=0.0), tmp_path)


def test_curves_png_and_events_match_metrics_jsonl_after_a_resume(tmp_path):
    """A run killed at step 14 and resumed: the events file holds exactly metrics.jsonl's rows
    (no events from after the checkpoint), read back by tensorboard itself; curves.png decodes."""
    cfg = toy_config(max_steps=20, save_every=4, eval_every=6, log_every=3)

    def eval_fn(model: torch.nn.Module) -> dict[str, float]:
        return {"loss": 0.25, "eval_acc": 0.5}

    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(ToyNet(), ToyBatches(8, tokens=True, crash_at=14), toy_loss, cfg, tmp_path,
            eval_fn=eval_fn)
    fit(ToyNet(), ToyBatches(8, tokens=True), toy_loss, cfg, tmp_path, eval_fn=eval_fn,
        resume=True)

    rows = log.read_rows(tmp_path)
    expected: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        for key, value in row.items():
            if key not in ("step", "split", "time"):
                expected.setdefault(f"{row['split']}/{key}", []).append((row["step"], value))
    assert {"train/loss", "train/tokens_per_s", "train/data_wait", "eval/eval_acc"} <= set(expected)
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"scalars": 0})
    events.Reload()
    assert set(events.Tags()["scalars"]) == set(expected)
    for tag, points in expected.items():
        seen = [(e.step, e.value) for e in events.Scalars(tag)]
        assert seen == [(step, float(np.float32(value))) for step, value in points], tag

    png = (tmp_path / "curves.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    height, width, _ = imread(tmp_path / "curves.png").shape
    assert height > 100 and width > 100


def test_pretrain_summary_has_a_throughput_block(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(WIKI.read_text(encoding="utf-8")[:60_000].replace(" \n \n", "\n\n"))
    assert main(["tokenizer", f"inputs={corpus}", f"output={tmp_path / 'tok'}",
                 "vocab_size=300"]) == 0
    assert main(["prepare", f"inputs={corpus}", f"tokenizer={tmp_path / 'tok'}",
                 f"output={tmp_path / 'shards'}", "workers=1"]) == 0
    out = tmp_path / "run"
    assert main(["pretrain", f"shards={tmp_path / 'shards'}", f"output={out}",
                 "model.hidden_size=16", "model.num_layers=1", "model.num_heads=2",
                 "model.intermediate_size=32", "model.max_position=32", "objective.seq_len=32",
                 "train.batch_size=4", "train.max_steps=4", "train.log_every=2",
                 "train.threads=1", "train.peak_flops=1e12"]) == 0
    block = json.loads((out / "summary.json").read_text())["throughput"]
    assert block["tokens_per_s"] > 0 and 0 <= block["data_wait"] <= 1
    assert 0 < block["mfu"] < 1 and block["peak_memory_mib"] > 0 and block["peak_flops"] == 1e12
    assert (out / "curves.png").is_file() and (out / "tb" / "events.out.tfevents.plmkit").is_file()
