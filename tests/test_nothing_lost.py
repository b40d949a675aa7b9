"""Issue 14: outputs never destroy a user's files, one writer per run, preemption-safe training.

Every refusal test checks that each file already there keeps its SHA-256.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from plmkit.cli import main
from plmkit.runtime import lock
from plmkit.runtime.errors import UserError
from plmkit.train.plan import PROBE_STEPS
from plmkit.train.state import checkpoint_dir, list_checkpoints, usable_checkpoint
from plmkit.train.trainer import fit
from tests.train.toy import ToyBatches, ToyNet, toy_config, toy_loss


def checksums(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def user_corpus(tmp: Path) -> Path:
    folder = tmp / "mycorpus"
    folder.mkdir()
    (folder / "corpus.txt").write_text("".join(f"line {i} of the corpus.\n\n" for i in range(60)))
    (folder / "notes.md").write_text("my only copy\n")
    return folder


def tokenizer(tmp: Path, corpus: Path) -> Path:
    assert (
        main(
            [
                "tokenizer",
                f"inputs={corpus}",
                f"output={tmp / 'tok'}",
                "vocab_size=120",
                "min_frequency=1",
            ]
        )
        == 0
    )
    return tmp / "tok"


def test_prepare_into_its_input_or_a_parent_or_a_foreign_dir_is_refused(tmp_path, capsys):
    corpus = user_corpus(tmp_path)
    tok = tokenizer(tmp_path, corpus)
    foreign = tmp_path / "runs"
    (foreign / "old").mkdir(parents=True)
    (foreign / "old" / "important.txt").write_text("keep me\n")
    before = checksums(tmp_path)
    for output, words in [
        (corpus, "is the input"),
        (tmp_path, "contains the input"),
        (corpus / "shards", "inside the input"),
        (foreign, "not written by plmkit"),
    ]:
        assert (
            main(
                ["prepare", f"inputs={corpus}", f"tokenizer={tok}", f"output={output}", "workers=1"]
            )
            == 2
        )
        assert words in capsys.readouterr().err
    assert checksums(tmp_path) == before


def test_tokenizer_refuses_its_input_and_replaces_its_own_only_with_overwrite(tmp_path, capsys):
    corpus = user_corpus(tmp_path)
    tok = tokenizer(tmp_path, corpus)
    before = checksums(tmp_path)
    assert main(["tokenizer", f"inputs={corpus}", f"output={corpus}", "vocab_size=120"]) == 2
    assert main(["tokenizer", f"inputs={corpus}", f"output={tok}", "vocab_size=120"]) == 2
    assert "overwrite=true" in capsys.readouterr().err
    assert checksums(tmp_path) == before
    assert (
        main(
            [
                "tokenizer",
                f"inputs={corpus}",
                f"output={tok}",
                "vocab_size=100",
                "min_frequency=1",
                "overwrite=true",
            ]
        )
        == 0
    )
    assert checksums(corpus) == {
        k.removeprefix("mycorpus/"): v for k, v in before.items() if k.startswith("mycorpus/")
    }


def test_pretrain_refuses_a_foreign_dir_and_a_second_run(tmp_path, capsys):
    corpus = user_corpus(tmp_path)
    tok = tokenizer(tmp_path, corpus)
    shards = tmp_path / "shards"
    assert (
        main(["prepare", f"inputs={corpus}", f"tokenizer={tok}", f"output={shards}", "workers=1"])
        == 0
    )
    before = checksums(tmp_path)
    base = [
        "pretrain",
        f"shards={shards}",
        "model.hidden_size=16",
        "model.num_heads=2",
        "model.intermediate_size=32",
        "model.num_layers=1",
        "train.max_steps=2",
        "train.batch_size=2",
        "objective.seq_len=16",
    ]
    for output in (corpus, tmp_path, shards):
        assert main([*base, f"output={output}"]) == 2
    assert checksums(tmp_path) == before
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from plmkit.runtime import lock\n"
            f"lock.acquire({str(tmp_path / 'run')!r}); print('held', flush=True)\n"
            "time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path.cwd())},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main([*base, f"output={tmp_path / 'run'}"]) == 2
        assert f"in use by pid {holder.pid}" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    assert main([*base, f"output={tmp_path / 'run'}"]) == 0  # the dead holder's lock is taken over


def test_sigterm_saves_the_step_it_arrived_in_and_resume_equals_uninterrupted(tmp_path):
    cfg = toy_config(max_steps=12)
    torch.manual_seed(0)
    whole = ToyNet()
    fit(whole, ToyBatches(8), toy_loss, cfg, tmp_path / "whole")

    class SignalAt(ToyBatches):
        def next_batch(self, progress: float) -> dict[str, torch.Tensor]:
            self.calls = getattr(self, "calls", 0) + 1
            if self.calls == 6:  # inside step 6: that step finishes, then step-6 is saved
                os.kill(os.getpid(), signal.SIGTERM)
            return super().next_batch(progress)

    torch.manual_seed(0)
    with pytest.raises(SystemExit) as stopped:
        fit(ToyNet(), SignalAt(8), toy_loss, cfg, tmp_path / "cut")
    assert stopped.value.code == 128 + signal.SIGTERM
    assert [step for step, _ in list_checkpoints(tmp_path / "cut")][-1] == 6
    resumed = ToyNet()
    fit(resumed, ToyBatches(8), toy_loss, cfg, tmp_path / "cut", resume=True)
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_torn_newest_checkpoint_falls_back_to_the_one_before(tmp_path, capsys):
    cfg = toy_config(max_steps=8, save_every=4)
    fit(ToyNet(), ToyBatches(8), toy_loss, cfg, tmp_path)
    weights = checkpoint_dir(tmp_path, 8) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    assert usable_checkpoint(tmp_path) == checkpoint_dir(tmp_path, 4)
    assert "step-8 is damaged" in capsys.readouterr().out


def test_disk_full_while_saving_is_one_line_and_keeps_the_previous_checkpoint(
    tmp_path, monkeypatch
):
    cfg = toy_config(max_steps=8, save_every=4)
    real_fsync = os.fsync

    def full_after_step_4(fd: int) -> None:
        if "step-8" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full_after_step_4)
    with pytest.raises(
        UserError,
        match=r"step-8: cannot write checkpoint: No space left on "
        r"device; .*step-4 is intact",
    ):
        fit(ToyNet(), ToyBatches(8), toy_loss, cfg, tmp_path)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-4"]


def test_nul_bytes_and_utf16_without_bom_are_refused(tmp_path, capsys):
    (tmp_path / "u16.txt").write_bytes("hello world\nsecond\n".encode("utf-16-le"))
    (tmp_path / "nul.txt").write_bytes(b"abc\x00def\n")
    assert main(["tokenizer", f"inputs={tmp_path / 'u16.txt'}", f"output={tmp_path / 'a'}"]) == 2
    assert "UTF-16 without a byte-order mark" in capsys.readouterr().err
    assert main(["tokenizer", f"inputs={tmp_path / 'nul.txt'}", f"output={tmp_path / 'b'}"]) == 2
    assert "nul.txt:1: NUL byte at column 4" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / lock.LOCK).write_text(
        f'{{"pid": {dead.pid}, "host": "{os.uname().nodename}", "started": {time.time()}}}\n'
    )
    lock.acquire(tmp_path)
    assert f'"pid": {os.getpid()}' in (tmp_path / lock.LOCK).read_text()
    lock.release(tmp_path)


def test_time_budgeted_run_killed_and_resumed_equals_the_uninterrupted_one(tmp_path, monkeypatch):
    from plmkit.train import trainer

    real_probe = trainer._time_one_step

    def same_timing(run: object) -> float:  # the real probe runs (and must leave no trace) ...
        real_probe(run)
        return 0.01  # ... but both runs get the same plan: 0.12 s / 0.01 s = 12 steps

    monkeypatch.setattr(trainer, "_time_one_step", same_timing)
    cfg = toy_config(max_steps=10**6, max_time_s=0.12, save_every=4)
    torch.manual_seed(0)
    whole, whole_batches = ToyNet(), ToyBatches(8)
    assert fit(whole, whole_batches, toy_loss, cfg, tmp_path / "whole").steps == 12
    torch.manual_seed(0)
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(ToyNet(), ToyBatches(8, crash_at=9), toy_loss, cfg, tmp_path / "cut")
    monkeypatch.setattr(trainer, "_time_one_step", lambda run: 1.0)  # a resume never probes
    resumed, batches = ToyNet(), ToyBatches(8)
    assert fit(resumed, batches, toy_loss, cfg, tmp_path / "cut", resume=True).steps == 12
    probes = PROBE_STEPS
    assert whole_batches.progress[:probes] == [0.0] * probes  # the probe's batches, then rewound
    assert batches.progress == whole_batches.progress[probes + 8 :]  # the schedule replays exactly
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


TINY_MODEL = ["model.hidden_size=16", "model.num_heads=2", "model.intermediate_size=32",
              "model.num_layers=1"]


def tiny_pretrain(tmp: Path) -> tuple[Path, list[str]]:
    corpus = user_corpus(tmp)
    shards = tmp / "shards"
    assert main(["prepare", f"inputs={corpus}", f"tokenizer={tokenizer(tmp, corpus)}",
                 f"output={shards}", "workers=1"]) == 0
    return shards, ["pretrain", f"shards={shards}", *TINY_MODEL, "train.max_steps=2",
                    "train.batch_size=2", "objective.seq_len=16"]


def test_finetune_and_export_refuse_an_input_its_parent_or_a_foreign_dir(tmp_path, capsys):
    shards, pretrain = tiny_pretrain(tmp_path)
    assert main([*pretrain, f"output={tmp_path / 'run'}"]) == 0
    data = tmp_path / "labelled"
    data.mkdir()
    (data / "train.tsv").write_text("text\tlabel\n" + "".join(f"line {i}\t{i % 2}\n"
                                                            for i in range(12)))
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("years of work\n")
    before = checksums(tmp_path)
    finetune = ["finetune", f"init={tmp_path / 'run'}", f"train_file={data / 'train.tsv'}",
                "train.max_steps=1"]
    for output, words in [(data / "train.tsv", "is the input"), (data, "contains the input"),
                          (tmp_path, "contains the input"), (tmp_path / "run", "is the input"),
                          (tmp_path / "run" / "ft", "inside the input"),
                          (foreign, "not written by plmkit")]:
        assert main([*finetune, f"output={output}"]) == 2
        assert words in capsys.readouterr().err
    export = ["export", f"model={tmp_path / 'run'}"]
    for output, words in [(tmp_path / "run", "is the input"), (tmp_path, "contains the input"),
                          (tmp_path / "run" / "hf", "inside the input"),
                          (foreign, "not written by plmkit"), (shards, "not a `plmkit export`")]:
        assert main([*export, f"output={output}"]) == 2
        assert words in capsys.readouterr().err
    assert checksums(tmp_path) == before


def test_overwrite_replaces_a_run_keeping_the_old_one_until_the_new_one_is_complete(
    tmp_path, capsys
):
    _, pretrain = tiny_pretrain(tmp_path)
    run = tmp_path / "run"
    assert main([*pretrain, f"output={run}"]) == 0
    first = checksums(run / "final")
    assert main([*pretrain, f"output={run}"]) == 2
    assert "pass resume=true to continue it or overwrite=true" in capsys.readouterr().err
    assert main([*pretrain, f"output={run}", "overwrite=true", "resume=true"]) == 2
    assert "pass one of them" in capsys.readouterr().err
    parked = tmp_path / ".run.old"

    class Preempted(Exception):
        pass

    from plmkit.stages import pretrain as stage

    real_fit = stage.fit

    def fit_then_die(*args, **kwargs):
        assert (parked / "final").is_dir() and checksums(parked / "final") == first
        raise Preempted

    stage.fit = fit_then_die
    try:
        with pytest.raises(Preempted):
            main([*pretrain, f"output={run}", "overwrite=true", "train.seed=1"])
    finally:
        stage.fit = real_fit
    assert checksums(parked / "final") == first  # the new run died: the old one is still there
    assert main([*pretrain, f"output={run}", "overwrite=true", "train.seed=1"]) == 0
    assert not parked.exists() and checksums(run / "final") != first
    assert not (run / lock.LOCK).exists()  # released at the end, not only at exit


def test_a_second_run_on_a_started_run_is_told_who_holds_it(tmp_path, capsys):
    _, pretrain = tiny_pretrain(tmp_path)
    run = tmp_path / "run"
    assert main([*pretrain, f"output={run}"]) == 0
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time\nfrom plmkit.runtime import lock\n"
         f"lock.acquire({str(run)!r}); print('held', flush=True)\ntime.sleep(60)"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(Path.cwd())})
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main([*pretrain, f"output={run}", "resume=true", "train.max_steps=4"]) == 2
        assert f"in use by pid {holder.pid}" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()


def test_a_temporary_folder_killed_before_its_marker_is_cleaned_by_the_pid_in_its_name(tmp_path):
    from plmkit.runtime.outputs import remove_leftovers

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    gone = tmp_path / f".step-5.{dead.pid}-x1.tmp"
    alive = tmp_path / ".step-5.1-x2.tmp"  # pid 1 runs; a folder with files is never guessed at
    full = tmp_path / f".step-5.{dead.pid}-x3.tmp"
    for folder in (gone, alive, full):
        folder.mkdir()
    (full / "data.bin").write_bytes(b"x")
    assert remove_leftovers(tmp_path, "step-*") == [gone]
    assert alive.is_dir() and full.is_dir()
