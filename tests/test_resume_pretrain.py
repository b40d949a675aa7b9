"""Exact resume of pretraining: SIGKILL mid-run, resume, and the final weights are bit-identical
to an uninterrupted run of the same config (CPU, fp32, dropout on)."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from plmkit.cli import main

RUN = ["model.hidden_size=32", "model.num_layers=2", "model.num_heads=2",
       "model.intermediate_size=64", "model.max_position=64", "objective.seq_len=48",
       "objective.short_seq_len=16", "objective.short_seq_fraction=0.5", "objective.whole_word=true",
       "train.batch_size=8", "train.max_steps=150", "train.save_every=10", "train.log_every=5",
       "train.threads=1"]


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("resume")
    corpus = root / "corpus.txt"
    lines = Path(__file__).resolve().parents[2] / "shared" / "data" / "wikitext-103-eval" / "wiki.valid.tokens"
    text = lines.read_text(encoding="utf-8")[:400_000]
    corpus.write_text(text.replace(" \n \n", "\n\n"), encoding="utf-8")
    assert main(["tokenizer", f"inputs={corpus}", f"output={root / 'tok'}", "vocab_size=2000"]) == 0
    assert main(["prepare", f"inputs={corpus}", f"tokenizer={root / 'tok'}", f"output={root / 'shards'}",
                 "workers=1"]) == 0
    return root / "shards"


def pretrain(shards: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "plmkit", "pretrain", f"shards={shards}",
                             f"output={out}", *RUN, *extra], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_sigkill_then_resume_is_bit_identical(shards: Path, tmp_path: Path,
                                              kill_then_resume) -> None:
    kill_then_resume(functools.partial(pretrain, shards), tmp_path, 30)


def torchrun(shards: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    """`plmkit pretrain` as a two-process torchrun job on the CPU (gloo)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
               "2", "-m", "plmkit", "pretrain", f"shards={shards}", f"output={out}", *RUN,
               "train.device=cpu", *extra]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def test_two_process_run_draws_per_rank_data_and_resumes_bit_identically(shards, tmp_path, capsys):
    """torchrun: each rank trains on batches of its own, a checkpoint holds every rank's data
    cursor and generators, and resuming from it reproduces the uninterrupted run's weights."""
    steps = ["train.max_steps=6", "train.save_every=3"]  # NSP joins at step 3: unused params before
    whole = torchrun(shards, tmp_path / "whole", *steps)
    assert whole.returncode == 0, whole.stderr[-3000:]
    trainer = json.loads((tmp_path / "whole/checkpoints/step-3/state/trainer.json").read_text())
    cursors = [c["rng"]["state"]["state"] for c in trainer["batches_by_rank"]]
    assert trainer["world_size"] == 2 and len(set(cursors)) == 2, "ranks drew the same batches"

    shutil.copytree(tmp_path / "whole", tmp_path / "resumed")
    for later in ("checkpoints/step-6", "final", "summary.json"):
        path = tmp_path / "resumed" / later
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    resumed = torchrun(shards, tmp_path / "resumed", *steps, "resume=true")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = load_file(tmp_path / "whole" / "final" / "model.safetensors")
    b = load_file(tmp_path / "resumed" / "final" / "model.safetensors")
    different = [k for k in a if not (a[k] == b[k]).all()]
    assert not different, f"weights differ after a two-process resume: {different[:5]}"

    # one process cannot take over two ranks' data positions
    alone = main(["pretrain", f"shards={shards}", f"output={tmp_path / 'resumed'}", *RUN,
                  *steps, "resume=true"])
    assert alone == 2 and "saved by 2 process(es), this run has 1" in capsys.readouterr().err


def test_two_process_finetuning_takes_the_steps_of_one_process_with_twice_the_batch(
    shards: Path, tmp_path: Path
) -> None:
    """torchrun finetune: each process trains on its half of every batch of 2 × batch_size rows,
    so (without dropout) two processes at batch 4 end where one process at batch 8 does; rank 0
    alone writes the run's files."""
    lines = (shards.parent / "corpus.txt").read_text(encoding="utf-8").split("\n")
    rows = [line.strip().replace("\t", " ")[:200] for line in lines if len(line.strip()) > 20][:64]
    train = tmp_path / "train.tsv"
    train.write_text("text\tlabel\n" + "".join(f"{r}\t{i % 2}\n" for i, r in enumerate(rows)))
    common = [f"tokenizer={shards / 'tokenizer'}", f"train_file={train}", "model.hidden_size=32",
              "model.num_layers=1", "model.num_heads=2", "model.intermediate_size=64",
              "model.max_position=64", "max_length=32", "dropout=0.0", "epochs=1",
              "train.device=cpu", "train.threads=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node", "2", "-m", "plmkit", "finetune", *common,
                          "train.batch_size=4", f"output={tmp_path / 'two'}"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    assert main(["finetune", *common, "train.batch_size=8", f"output={tmp_path / 'one'}"]) == 0
    for run in ("one", "two"):
        assert json.loads((tmp_path / run / "summary.json").read_text())["steps"] == 8
    a = load_file(tmp_path / "one" / "final" / "model.safetensors")
    b = load_file(tmp_path / "two" / "final" / "model.safetensors")
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst < 1e-5, f"two processes at batch 4 vs one at batch 8: max abs diff {worst:.2e}"
