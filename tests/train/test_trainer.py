"""The training loop on a toy task: it learns, accumulates exactly, schedules, stops and logs."""

from __future__ import annotations

import json
import math
import time

import pytest
import torch
from torch import nn

from plmkit.runtime.errors import UserError
from plmkit.train.optim import lr_at, param_groups
from plmkit.train.state import latest_checkpoint, read_trainer_state
from plmkit.train.trainer import fit

from .toy import ToyBatches, ToyNet, toy_config, toy_loss


def test_loss_goes_down(tmp_path):
    torch.manual_seed(0)
    cfg = toy_config(max_steps=60, log_every=10)
    result = fit(ToyNet(), ToyBatches(32), toy_loss, cfg, tmp_path)
    losses = [row["loss"] for row in result.history if row["split"] == "train"]
    assert result.steps == 60 and len(losses) == 6
    assert losses[-1] < 0.5 * losses[0], losses
    assert result.metrics["acc"] > 0.8


def test_grad_accum_matches_a_big_batch(tmp_path):
    weights = []
    for accum, batch_size in ((2, 8), (1, 16)):
        torch.manual_seed(0)
        model = ToyNet(dropout=0.0)
        cfg = toy_config(grad_accum=accum, batch_size=batch_size, max_steps=5)
        fit(model, ToyBatches(batch_size), toy_loss, cfg, tmp_path / str(accum))
        weights.append(model.state_dict())
    for name, value in weights[0].items():
        assert (value - weights[1][name]).abs().max() < 1e-6, name


def test_no_weight_decay_on_biases_and_norms():
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 4), nn.LayerNorm(4), nn.RMSNorm(4))
    decay, no_decay = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(model[0].weight), id(model[1].weight)}
    assert len(no_decay["params"]) == 4  # linear bias, layer norm weight and bias, RMSNorm weight


def test_lr_by_rms_scales_each_matrix_by_its_starting_rms(tmp_path):
    torch.manual_seed(0)
    model = ToyNet()
    with torch.no_grad():
        model.head.weight.mul_(10.0)  # a matrix ten times larger than its neighbour
    start = {name: p.detach().pow(2).mean().sqrt().item() for name, p in model.named_parameters()}
    cfg = toy_config(max_steps=3, save_every=3, lr_by_rms=True, warmup_fraction=0.0,
                     schedule="constant")
    result = fit(model, ToyBatches(8), toy_loss, cfg, tmp_path / "run")
    assert result.steps == 3
    optimizer = torch.optim.AdamW(param_groups(ToyNet(), 0.1, by_rms=True))
    # proj and head alone, each with its scale; biases and the norm in one unscaled group
    assert [len(g["params"]) for g in optimizer.param_groups] == [1, 1, 4]
    groups = param_groups(model, 0.1, by_rms=True)
    assert [g["lr_scale"] for g in groups[:2]] == pytest.approx(
        [model.proj.weight.pow(2).mean().sqrt().item(), model.head.weight.pow(2).mean().sqrt().item()]
    )
    saved = torch.load(next((tmp_path / "run").rglob("optimizer.pt")), weights_only=True)
    scales = [g["lr_scale"] for g in saved["param_groups"]]
    assert scales == pytest.approx([start["proj.weight"], start["head.weight"], 1.0])
    assert [g["lr"] for g in saved["param_groups"]] == pytest.approx([cfg.lr * s for s in scales])


@pytest.mark.parametrize(
    "schedule, progress, expected",
    [
        ("linear", 0.0, 0.0),
        ("linear", 0.05, 0.5),  # half-way through the warm-up
        ("linear", 0.1, 1.0),
        ("linear", 0.55, 0.5),
        ("linear", 1.0, 0.0),
        ("cosine", 0.1 + 0.9 / 4, 0.5 * (1 + math.cos(math.pi / 4))),
        ("cosine", 0.55, 0.5),
        ("cosine", 1.0, 0.0),
        ("constant", 0.05, 0.5),
        ("constant", 0.9, 1.0),
    ],
)
def test_schedule_values(schedule, progress, expected):
    cfg = toy_config(schedule=schedule, warmup_fraction=0.1)
    assert lr_at(progress, cfg) == pytest.approx(expected, abs=1e-12)


def test_logged_lr_follows_the_schedule(tmp_path):
    cfg = toy_config(max_steps=10, log_every=1, schedule="cosine", warmup_fraction=0.2)
    batches = ToyBatches(8)
    result = fit(ToyNet(), batches, toy_loss, cfg, tmp_path)
    lrs = [row["lr"] for row in result.history]
    assert lrs == pytest.approx([cfg.lr * lr_at(step / 10, cfg) for step in range(10)])
    assert batches.progress == pytest.approx([step / 10 for step in range(10)])


def test_max_time_becomes_a_recorded_step_plan_and_excludes_eval_time(tmp_path):
    cfg = toy_config(max_steps=10**6, max_time_s=0.3, eval_every=20)

    def slow_eval(model: nn.Module) -> dict[str, float]:
        time.sleep(0.05)
        return {"loss": 0.0}

    started = time.perf_counter()
    result = fit(ToyNet(), ToyBatches(8), toy_loss, cfg, tmp_path, eval_fn=slow_eval)
    wall = time.perf_counter() - started
    evals = sum(row["split"] == "eval" for row in result.history)
    plan = read_trainer_state(latest_checkpoint(tmp_path))["plan"]
    assert plan["max_time_s"] == 0.3 and plan["steps"] == int(0.3 / plan["step_s"])
    assert 0 < result.steps == plan["steps"] < 10**6  # the run ends at the plan, not the clock
    assert 0.05 < result.train_time_s < 3.0  # the probe's timing roughly holds
    assert result.train_time_s < wall - 0.05 * evals


def test_metrics_jsonl_rows_and_eval_cadence(tmp_path):
    seen_steps = []

    def eval_fn(model: nn.Module) -> dict[str, float]:
        seen_steps.append(len(seen_steps))
        assert not torch.is_grad_enabled()
        return {"loss": 1.5, "eval_acc": 0.25}

    cfg = toy_config(max_steps=10, eval_every=3, log_every=4)
    result = fit(ToyNet(), ToyBatches(8, tokens=True), toy_loss, cfg, tmp_path, eval_fn=eval_fn)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows == result.history
    assert [r["step"] for r in rows if r["split"] == "eval"] == [3, 6, 9, 10]
    assert [r["step"] for r in rows if r["split"] == "train"] == [4, 8, 10]
    train = next(r for r in rows if r["split"] == "train")
    assert {"time", "lr", "loss", "acc", "grad_norm", "tokens_per_s"} <= set(train)
    assert rows[-1] == {
        "step": 10,
        "split": "eval",
        "time": rows[-1]["time"],
        "eval_loss": 1.5,
        "eval_acc": 0.25,
    }
    assert result.metrics["eval_loss"] == 1.5 and "loss" in result.metrics
    assert (tmp_path / "checkpoints" / "step-10" / "model.safetensors").is_file()


def test_bad_settings_are_user_errors(tmp_path):
    with pytest.raises(UserError, match=r"train\.grad_accum: must be ≥ 1"):
        fit(ToyNet(), ToyBatches(8), toy_loss, toy_config(grad_accum=0), tmp_path)
    with pytest.raises(UserError, match=r"train\.schedule: 'step'"):
        fit(ToyNet(), ToyBatches(8), toy_loss, toy_config(schedule="step"), tmp_path)
    with pytest.raises(UserError, match=r"train\.max_steps: is 0"):
        fit(ToyNet(), ToyBatches(8), toy_loss, toy_config(max_steps=0), tmp_path)


def test_compiled_training_takes_the_same_steps_as_eager(tmp_path):
    """train.compile compiles the model and its loss as one graph (runtime.compiling.compile_step); the
    weights after a few steps match an eager run's."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    weights = []
    for compiled in (False, True):
        torch.manual_seed(0)
        model = ToyNet(dropout=0.0)
        cfg = toy_config(max_steps=4, compile=compiled, save_every=0)
        fit(model, ToyBatches(16), toy_loss, cfg, tmp_path / str(compiled))
        weights.append(model.state_dict())
    assert counters["stats"]["unique_graphs"] >= 1  # Dynamo did trace the step
    for name, value in weights[0].items():
        assert (value - weights[1][name]).abs().max() < 1e-5, name


def test_fine_tuning_groups_decay_by_depth_and_let_the_head_go_first():
    """layer_decay: each block's rate is layer_decay × the one above, the embeddings lowest, the
    head at head_lr_scale; head_first: the body's rate is 0 until it joins, then it warms up on
    a schedule of its own."""
    from plmkit.config import ModelConfig, TrainConfig
    from plmkit.models.heads import SequenceClassifier
    from plmkit.train.optim import set_lr

    model = SequenceClassifier(ModelConfig(vocab_size=50, hidden_size=16, num_layers=3,
                                           num_heads=2, intermediate_size=32), 2)
    groups = param_groups(model, 0.01, layer_decay=0.5, head_lr_scale=4.0, head_first=0.25)
    scale_of = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert scale_of[id(named["classifier.weight"])] == 4.0
    assert scale_of[id(named["encoder.pooler.weight"])] == 1.0
    assert scale_of[id(named["encoder.layers.2.attn.qkv.weight"])] == 1.0
    assert scale_of[id(named["encoder.layers.1.attn.qkv.weight"])] == 0.5
    assert scale_of[id(named["encoder.layers.0.attn.qkv.weight"])] == 0.25
    assert scale_of[id(named["encoder.embeddings.word.weight"])] == 0.125
    assert sum(len(g["params"]) for g in groups) == len(named)
    decay_of = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    assert decay_of[id(named["classifier.bias"])] == 0.0
    assert decay_of[id(named["classifier.weight"])] == 0.01

    cfg = TrainConfig(lr=1.0, warmup_fraction=0.2, schedule="linear", max_steps=10)
    optimizer = torch.optim.AdamW(groups)
    head = next(g for g in optimizer.param_groups if g["lr_scale"] == 4.0)
    body = next(g for g in optimizer.param_groups if g["lr_scale"] == 0.5)
    assert body["start"] == 0.25 and head["start"] == 0.0
    set_lr(optimizer, cfg, 0.1)
    assert body["lr"] == 0.0 and head["lr"] == pytest.approx(4.0 * lr_at(0.1, cfg))
    set_lr(optimizer, cfg, 0.25 + 0.75 * 0.1)  # the body 10% into its own run: warming up
    assert body["lr"] == pytest.approx(0.5 * lr_at(0.1, cfg)) and 0 < body["lr"] < 0.5


def test_fine_tuning_groups_need_a_task_encoder():
    with pytest.raises(UserError, match="layer_decay"):
        param_groups(ToyNet(), 0.1, layer_decay=0.8)
