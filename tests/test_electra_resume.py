"""ELECTRA pretraining: SIGKILL mid-run and resume gives the uninterrupted run's weights, bit for
bit (discriminator and generator; CPU, fp32, dropout on); bad ELECTRA settings are one-line
errors before anything is written."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest

from plmkit.cli import main

RUN = ["objective.kind=electra", "model.hidden_size=32", "model.num_layers=2",
       "model.num_heads=2", "model.intermediate_size=64", "model.max_position=64",
       "objective.seq_len=48", "objective.short_seq_len=16", "objective.short_seq_fraction=0.5",
       "objective.generator_size=0.5", "train.batch_size=8", "train.max_steps=80",
       "train.save_every=10", "train.log_every=5", "train.threads=1"]


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    root = tmp_path_factory.mktemp("electra-resume")
    corpus = root / "corpus.txt"
    text = (shared_data / "wikitext-103-eval" / "wiki.valid.tokens").read_text(encoding="utf-8")
    corpus.write_text(text[:300_000].replace(" \n \n", "\n\n"), encoding="utf-8")
    assert main(["tokenizer", f"inputs={corpus}", f"output={root / 'tok'}", "vocab_size=2000"]) == 0
    assert main(["prepare", f"inputs={corpus}", f"tokenizer={root / 'tok'}",
                 f"output={root / 'shards'}", "workers=1"]) == 0
    return root / "shards"


def pretrain(shards: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "plmkit", "pretrain", f"shards={shards}",
                             f"output={out}", *RUN, *extra], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_sigkill_then_resume_is_bit_identical(shards: Path, tmp_path: Path,
                                              kill_then_resume) -> None:
    kill_then_resume(functools.partial(pretrain, shards), tmp_path, 30,
                     ("model.safetensors", "generator/model.safetensors"))


@pytest.mark.parametrize("setting, message", [
    ("objective.generator_size=1.5", "objective.generator_size must be in (0, 1]"),
    ("objective.generator_size=0", "objective.generator_size must be in (0, 1]"),
    ("objective.generator_layers=0", "objective.generator_layers must be in (0, 1]"),
    ("objective.disc_weight=0", "objective.disc_weight must be > 0"),
    ("model.family=gpt", "model.family 'gpt' cannot train objective.kind 'electra'"),
    ("model.embedding_size=16", "model.embedding_size 16"),
    ("objective.generator_size=0.78", "does not split into"),  # 25 wide, 2 heads
])
def test_bad_electra_settings_are_one_line_errors(shards, tmp_path, capsys, setting, message):
    out = tmp_path / "run"
    assert main(["pretrain", f"shards={shards}", f"output={out}", *RUN, setting]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not out.exists()
