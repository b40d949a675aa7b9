"""`plmkit distill`: the loss against a hand computation, a student built from the teacher's
blocks, a student directory Transformers loads as it is, kill -9 and resume bit for bit, and
the mistakes a user makes (one line each, nothing written)."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import plmkit
from plmkit.cli import main
from plmkit.config import DistillConfig
from plmkit.stages.distill import build_student, default_layers
from plmkit.tasks.distillation import distillation_loss
from plmkit.tasks.registry import load_task_model

TEACHER = ["model.hidden_size=32", "model.num_layers=3", "model.num_heads=2",
           "model.intermediate_size=64", "model.max_position=64", "max_length=32",
           "train.batch_size=8", "train.threads=1"]
STUDENT = ["train.batch_size=8", "train.max_steps=40", "train.save_every=10", "train.log_every=5",
           "train.threads=1", "train.lr=1e-3"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    root = tmp_path_factory.mktemp("distill")
    lines = (shared_data / "wikitext-103-eval" / "wiki.valid.tokens").read_text(encoding="utf-8")
    pieces = (" ".join(s.split()) for s in lines.split(" . "))
    sentences = [s for s in pieces if 20 < len(s) < 150][:400]
    (root / "corpus.txt").write_text("\n".join(sentences) + "\n", encoding="utf-8")
    rows = ["text\tlabel"] + [f"{s}\t{'pos' if ' the ' in s else 'neg'}" for s in sentences]
    (root / "train.tsv").write_text("\n".join(rows[:300]) + "\n", encoding="utf-8")
    (root / "dev.tsv").write_text("\n".join(rows[:1] + rows[300:]) + "\n", encoding="utf-8")
    assert main(["tokenizer", f"inputs={root / 'corpus.txt'}", f"output={root / 'tok'}",
                 "vocab_size=1000"]) == 0
    assert main(["finetune", f"tokenizer={root / 'tok'}", f"train_file={root / 'train.tsv'}",
                 f"output={root / 'teacher'}", *TEACHER, "train.max_steps=60", "train.lr=1e-3"]) == 0
    return root


def test_the_loss_is_the_hand_computed_mix_of_soft_and_hard_terms() -> None:
    torch.manual_seed(0)
    teacher_logits, student_logits = torch.randn(6, 3), torch.randn(6, 3, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])

    class Fixed(torch.nn.Module):
        def __init__(self, out):
            super().__init__()
            self.out = out

        def forward(self, *inputs):
            return self.out

    batch = {"input_ids": torch.zeros(6, 4, dtype=torch.long), "attention_mask": torch.ones(6, 4),
             "token_type_ids": torch.zeros(6, 4, dtype=torch.long), "labels": labels}
    loss, logs = distillation_loss(Fixed(teacher_logits), 2.0, 0.7)(Fixed(student_logits), batch)
    p = F.softmax(teacher_logits / 2, dim=-1)
    kl = (p * (p.log() - F.log_softmax(student_logits / 2, dim=-1))).sum(-1).mean() * 4
    hand = 0.7 * kl + 0.3 * F.cross_entropy(student_logits, labels)
    assert abs(loss.item() - hand.item()) < 1e-6, (loss.item(), hand.item())
    assert abs(logs["soft"] - kl.item()) < 1e-6
    same, _ = distillation_loss(Fixed(teacher_logits), 2.0, 1.0)(Fixed(teacher_logits), batch)
    assert abs(same.item()) < 1e-6  # a student equal to its teacher has nothing to learn


def test_a_tagger_learns_only_at_its_labelled_positions() -> None:
    torch.manual_seed(1)
    teacher_logits, student_logits = torch.randn(2, 5, 4), torch.randn(2, 5, 4)
    labels = torch.tensor([[-100, 1, -100, 2, -100], [-100, 0, 3, -100, -100]])

    def fixed(out):
        return lambda *inputs: out

    batch = {"input_ids": torch.zeros(2, 5, dtype=torch.long), "attention_mask": torch.ones(2, 5),
             "token_type_ids": torch.zeros(2, 5, dtype=torch.long), "labels": labels}
    teacher = torch.nn.Identity()  # replaced below: the loss only calls it
    loss_fn = distillation_loss(teacher, 1.0, 0.5)
    teacher.forward = fixed(teacher_logits)
    loss, _ = loss_fn(fixed(student_logits), batch)
    keep = labels != -100
    p = F.softmax(teacher_logits[keep], dim=-1)
    kl = (p * (p.log() - F.log_softmax(student_logits[keep], dim=-1))).sum(-1).mean()
    hand = 0.5 * kl + 0.5 * F.cross_entropy(student_logits[keep], labels[keep])
    assert abs(loss.item() - hand.item()) < 1e-6


def test_a_student_of_teacher_blocks_starts_as_those_blocks(data: Path) -> None:
    assert default_layers(6) == [1, 3, 5] and default_layers(2) == [1] and default_layers(3) == [0, 2]
    teacher = load_task_model(data / "teacher")
    student, cfg, _ = build_student(DistillConfig(teacher=str(data / "teacher"), student_layers=[2]),
                                    teacher)
    assert cfg.num_layers == 1
    t, s = teacher.model.state_dict(), student.state_dict()
    for key, value in s.items():
        source = key.replace("encoder.layers.0.", "encoder.layers.2.")
        assert torch.equal(value, t[source]), key


def test_the_student_is_a_hugging_face_directory_that_scores_near_its_teacher(data: Path, tmp_path) -> None:
    from transformers import BertForSequenceClassification

    out = tmp_path / "student"
    assert main(["distill", f"teacher={data / 'teacher'}", f"train_file={data / 'train.tsv'}",
                 f"dev_file={data / 'dev.tsv'}", f"output={out}", *STUDENT]) == 0
    summary = plmkit.load(out).settings, (out / "summary.json").read_text()
    assert '"teacher_dev"' in summary[1] and '"student_from": "teacher blocks [0, 2]"' in summary[1]
    hf = BertForSequenceClassification.from_pretrained(out / "final").eval()
    assert hf.config.num_hidden_layers == 2
    ours = load_task_model(out)
    batch = {"input_ids": torch.tensor([[2, 10, 11, 12, 3], [2, 13, 3, 0, 0]]),
             "attention_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]),
             "token_type_ids": torch.zeros(2, 5, dtype=torch.long)}
    with torch.no_grad():
        a = hf(**batch).logits
        b = ours.model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    assert (a - b).abs().max().item() < 1e-4


def distill(data: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "plmkit", "distill", f"teacher={data / 'teacher'}",
                             f"train_file={data / 'train.tsv'}", f"output={out}", *STUDENT, *extra],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_distill_killed_then_resumed_is_bit_identical(data: Path, tmp_path: Path,
                                                      kill_then_resume) -> None:
    kill_then_resume(functools.partial(distill, data), tmp_path, 20)


@pytest.mark.parametrize("args, message", [
    (["student_layers=[0, 7]"], "the teacher's blocks are 0..2"),
    (["student_layers=[2, 1]"], "distinct and increasing"),
    (["temperature=0"], "temperature must be > 0"),
    (["alpha=1.5"], "alpha must be in [0, 1]"),
    (["student_init=TOK"], "config.json: not found"),
])
def test_bad_distill_requests_say_why_and_write_nothing(data: Path, tmp_path: Path, capsys,
                                                        args: list[str], message: str) -> None:
    out = tmp_path / "nothing"
    args = [a.replace("TOK", str(data / "tok")) for a in args]
    assert main(["distill", f"teacher={data / 'teacher'}", f"train_file={data / 'train.tsv'}",
                 f"output={out}", *args]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert not out.exists()
