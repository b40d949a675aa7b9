"""`plmkit demo` end to end at toy sizes: every stage in order, seeds, task-adaptive pretraining,
and the promise the issue asked for — the same settings print the same table twice (here once
with the cells in two worker processes, once in the demo's own)."""

from __future__ import annotations

import json
from pathlib import Path

from plmkit.cli import main

TOY = ["budgets=[40]", "seeds=2", "min_finetune_steps=3", "tokenizer.vocab_size=3000",
       "pretrain.model.hidden_size=32", "pretrain.model.intermediate_size=64",
       "pretrain.train.max_steps=6", "pretrain.train.batch_size=8", "pretrain.train.save_every=0",
       "tapt.train.max_steps=4", "tapt.train.batch_size=8", "tapt.train.save_every=0",
       "finetune.epochs=0.5", "finetune.train.batch_size=16", "finetune.max_length=32",
       "scratch.epochs=0.5", "scratch.train.batch_size=16", "scratch.max_length=32"]


def run_demo(out: Path, *extra: str) -> dict:
    assert main(["demo", f"output={out}", *TOY, *extra]) == 0
    return json.loads((out / "results.json").read_text(encoding="utf-8"))


def test_demo_runs_every_stage_and_prints_the_same_table_twice(tmp_path: Path) -> None:
    first = run_demo(tmp_path / "a")
    (cell,) = first["budgets"]
    assert cell["labels"] == 40
    for name in ("pretrained", "scratch"):
        spread = cell[f"{name}_test_acc"]
        assert 0.0 <= spread["min"] <= spread["median"] <= spread["max"] <= 1.0
        assert (tmp_path / "a" / "runs" / f"{name}-40" / "seed-1" / "final" / "config.json").is_file()
    assert first["pretrain"]["steps"] == 6 and first["tapt"]["steps"] == 4
    assert (tmp_path / "a" / "hf-model" / "model.safetensors").is_file()
    table = (tmp_path / "a" / "results.md").read_text(encoding="utf-8")
    assert "task-adaptive" in table and "median (min–max) of 2 seeds" in table

    assert (tmp_path / "a" / "runs" / "scratch-40" / "log.txt").is_file()  # a worker's output
    run_demo(tmp_path / "b", "workers=1")  # the cells in this process, two threads: same numbers
    assert (tmp_path / "b" / "results.md").read_text(encoding="utf-8") == table
