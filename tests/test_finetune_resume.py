"""Fine-tuning survives kill -9: resume=true continues from the newest checkpoint and ends with
the uninterrupted run's weights, bit for bit (CPU, fp32, dropout on)."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest

from plmkit.cli import main

RUN = ["model.hidden_size=32", "model.num_layers=2", "model.num_heads=2",
       "model.intermediate_size=64", "model.max_position=64", "max_length=32",
       "train.batch_size=8", "train.max_steps=60", "train.save_every=10", "train.log_every=5",
       "train.threads=1"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    root = tmp_path_factory.mktemp("finetune-resume")
    lines = (shared_data / "wikitext-103-eval" / "wiki.valid.tokens").read_text(encoding="utf-8")
    pieces = (" ".join(s.split()) for s in lines.split(" . "))
    sentences = [s for s in pieces if 20 < len(s) < 150][:400]
    (root / "corpus.txt").write_text("\n".join(sentences) + "\n", encoding="utf-8")
    rows = ["text\tlabel"] + [f"{s}\t{'pos' if ' the ' in s else 'neg'}" for s in sentences]
    (root / "train.tsv").write_text("\n".join(rows[:300]) + "\n", encoding="utf-8")
    (root / "dev.tsv").write_text("\n".join(rows[:1] + rows[300:]) + "\n", encoding="utf-8")
    assert main(["tokenizer", f"inputs={root / 'corpus.txt'}", f"output={root / 'tok'}",
                 "vocab_size=1000"]) == 0
    return root


def finetune(data: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "plmkit", "finetune", f"tokenizer={data / 'tok'}",
                             f"train_file={data / 'train.tsv'}", f"dev_file={data / 'dev.tsv'}",
                             f"output={out}", *RUN, *extra], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_finetune_killed_then_resumed_is_bit_identical(data: Path, tmp_path: Path,
                                                       kill_then_resume) -> None:
    kill_then_resume(functools.partial(finetune, data), tmp_path, 20)


def test_finetune_resume_refuses_a_changed_setting(data: Path, tmp_path: Path, capsys) -> None:
    base = ["finetune", f"tokenizer={data / 'tok'}", f"train_file={data / 'train.tsv'}",
            f"output={tmp_path / 'run'}", *RUN, "train.max_steps=10"]
    assert main(base) == 0
    assert main([*base, "resume=true", "train.lr=0.5"]) == 2
    assert "resume: config changed: train.lr" in capsys.readouterr().err
