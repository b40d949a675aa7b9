"""A resumed run equals an uninterrupted one bit for bit, even after SIGKILL; bad resumes are refused."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from plmkit.runtime.errors import UserError
from plmkit.train import log
from plmkit.train.state import checkpoint_dir, latest_checkpoint, list_checkpoints
from plmkit.train.throughput import SPEED_FIELDS
from plmkit.train.trainer import fit

from .toy import ToyBatches, ToyNet, toy_config, toy_loss

TOY_SCRIPT = Path(__file__).with_name("toy.py")


def assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def comparable(rows: list[dict]) -> list[dict]:
    """Log rows without the fields that depend on the machine's speed."""
    return [{k: v for k, v in r.items() if k not in SPEED_FIELDS} for r in rows]


def test_resume_after_crash_equals_uninterrupted(tmp_path):
    """Crash at step 15 of 20 (checkpoints every 4): resuming gives the same weights and log."""
    cfg = toy_config(max_steps=20, save_every=4, eval_every=6, log_every=3)

    def eval_fn(model: torch.nn.Module) -> dict[str, float]:
        torch.rand(3)  # an eval that draws random numbers must not disturb training
        return {"loss": 0.0}

    torch.manual_seed(0)
    whole = ToyNet()
    fit(whole, ToyBatches(8), toy_loss, cfg, tmp_path / "whole", eval_fn=eval_fn)

    torch.manual_seed(0)
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(ToyNet(), ToyBatches(8, crash_at=14), toy_loss, cfg, tmp_path / "cut", eval_fn=eval_fn)
    assert [step for step, _ in list_checkpoints(tmp_path / "cut")] == [8, 12]
    resumed = ToyNet(hidden=32)  # fresh weights, overwritten from the checkpoint
    result = fit(
        resumed, ToyBatches(8), toy_loss, cfg, tmp_path / "cut", eval_fn=eval_fn, resume=True
    )

    assert result.steps == 20
    assert_same_tensors(whole.state_dict(), resumed.state_dict())
    assert comparable(log.read_rows(tmp_path / "cut")) == comparable(
        log.read_rows(tmp_path / "whole")
    )


def test_extending_a_finished_run_equals_a_longer_run(tmp_path):
    """Fit 12 steps, then resume with max_steps=20: same weights as 20 steps straight."""
    cfg = toy_config(max_steps=20, save_every=4, schedule="constant", warmup_fraction=0.0)
    torch.manual_seed(0)
    whole = ToyNet()
    fit(whole, ToyBatches(8), toy_loss, cfg, tmp_path / "whole")

    torch.manual_seed(0)
    short = toy_config(max_steps=12, save_every=4, schedule="constant", warmup_fraction=0.0)
    assert fit(ToyNet(), ToyBatches(8), toy_loss, short, tmp_path / "run").steps == 12
    extended = ToyNet()
    assert fit(extended, ToyBatches(8), toy_loss, cfg, tmp_path / "run", resume=True).steps == 20
    assert_same_tensors(whole.state_dict(), extended.state_dict())


def run_toy(run_dir: Path, *extra: str) -> subprocess.Popen:
    command = [
        sys.executable,
        str(TOY_SCRIPT),
        str(run_dir),
        "--steps",
        "3000",
        "--save-every",
        "20",
    ]
    return subprocess.Popen([*command, *extra], stderr=subprocess.DEVNULL)


def test_sigkill_then_resume_is_bit_identical(tmp_path):
    whole = run_toy(tmp_path / "whole")
    victim = run_toy(tmp_path / "victim")
    deadline = time.monotonic() + 60
    while latest_checkpoint(tmp_path / "victim") in (None, checkpoint_dir(tmp_path / "victim", 20)):
        assert victim.poll() is None and time.monotonic() < deadline, (
            "toy run ended before the kill"
        )
        time.sleep(0.005)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait() == -signal.SIGKILL
    killed_at = latest_checkpoint(tmp_path / "victim")
    assert killed_at is not None and killed_at.name != "step-3000", "the kill came too late"

    assert run_toy(tmp_path / "victim", "--resume").wait() == 0
    assert whole.wait() == 0
    final = "checkpoints/step-3000/model.safetensors"
    assert_same_tensors(
        load_file(tmp_path / "whole" / final), load_file(tmp_path / "victim" / final)
    )
    assert comparable(log.read_rows(tmp_path / "victim")) == comparable(
        log.read_rows(tmp_path / "whole")
    )


# ----------------------------------------------------------------------------- refused resumes


@pytest.fixture()
def finished_run(tmp_path) -> Path:
    cfg = toy_config(max_steps=4, save_every=2)
    fit(
        ToyNet(), ToyBatches(8), toy_loss, cfg, tmp_path, run_config={"model": {"hidden_size": 128}}
    )
    return tmp_path


def test_changed_run_config_names_the_field(finished_run):
    cfg = toy_config(max_steps=4, save_every=2)
    with pytest.raises(UserError, match=r"config changed: model\.hidden_size was 128, now 256"):
        fit(
            ToyNet(),
            ToyBatches(8),
            toy_loss,
            cfg,
            finished_run,
            resume=True,
            run_config={"model": {"hidden_size": 256}},
        )
    with pytest.raises(UserError, match=r"config changed: train\.lr was 0\.01, now 0\.02"):
        fit(
            ToyNet(),
            ToyBatches(8),
            toy_loss,
            toy_config(max_steps=4, lr=0.02),
            finished_run,
            resume=True,
        )


def test_resume_before_the_first_checkpoint_starts_at_step_0(tmp_path, capsys):
    torch.manual_seed(0)
    fresh = ToyNet()
    fit(fresh, ToyBatches(8), toy_loss, toy_config(max_steps=4), tmp_path / "fresh")
    torch.manual_seed(0)
    resumed = ToyNet()
    fit(resumed, ToyBatches(8), toy_loss, toy_config(max_steps=4), tmp_path / "r", resume=True)
    assert "no checkpoint in" in capsys.readouterr().out
    for a, b in zip(fresh.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_resume_when_every_checkpoint_is_torn_is_refused(finished_run):
    for _, ckpt in list_checkpoints(finished_run):
        weights = ckpt / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:50])
    with pytest.raises(UserError, match="no checkpoint to resume in .*none there is whole"):
        fit(ToyNet(), ToyBatches(8), toy_loss, toy_config(), finished_run, resume=True)


def test_fresh_run_over_old_checkpoints_is_refused(finished_run):
    with pytest.raises(UserError, match="already holds checkpoints"):
        fit(ToyNet(), ToyBatches(8), toy_loss, toy_config(), finished_run)


@pytest.mark.parametrize(
    "name", ["model.safetensors", "state/optimizer.pt", "state/rng.pt", "state/trainer.json"]
)
def test_truncated_checkpoint_file_is_named(finished_run, name):
    path = checkpoint_dir(finished_run, 4) / name
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    (checkpoint_dir(finished_run, 4) / "manifest.json").unlink()  # as an older plmkit wrote it
    with pytest.raises(UserError, match=f"{name}: cannot load checkpoint file"):
        fit(
            ToyNet(),
            ToyBatches(8),
            toy_loss,
            toy_config(max_steps=4),
            finished_run,
            resume=True,
            run_config={"model": {"hidden_size": 128}},
        )
