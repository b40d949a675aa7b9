"""The spine end to end through the CLI, on a slice of the demo's real Chinese data.

tokenizer → prepare → pretrain (MLM + NSP) → finetune → evaluate → predict → export, each a
`plmkit` verb; then the exports are loaded by Transformers and compared numerically with
plmkit's own forward pass on a real padded batch (max-abs difference stated on failure).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from plmkit.checkpoint import load_into, read_checkpoint
from plmkit.cli import main
from plmkit.models.encoder import PretrainingModel
from plmkit.models.heads import SequenceClassifier
from plmkit.stages.demo_data import build_demo_data
from plmkit.text.tokenizer import load_tokenizer

TINY = ["model.hidden_size=32", "model.num_layers=2", "model.num_heads=2",
        "model.intermediate_size=64", "model.max_position=64"]


def cli(*args: str) -> None:
    code = main(list(args))
    assert code == 0, f"plmkit {' '.join(args)} exited {code}"


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pipeline")
    files = build_demo_data(root / "data")
    corpus = root / "corpus.txt"
    corpus.write_text(files.corpus.read_text(encoding="utf-8")[:300_000], encoding="utf-8")
    train = root / "train.tsv"
    train.write_text("".join(files.train.read_text(encoding="utf-8").splitlines(True)[:301]),
                     encoding="utf-8")
    cli("tokenizer", f"inputs={corpus}", f"output={root / 'tok'}", "vocab_size=3000")
    cli("prepare", f"inputs={corpus}", f"tokenizer={root / 'tok'}", f"output={root / 'shards'}",
        "val_fraction=0.05", "workers=1")
    cli("pretrain", f"shards={root / 'shards'}", f"output={root / 'pre'}", *TINY,
        "objective.seq_len=64", "train.max_steps=40", "train.batch_size=16", "train.lr=2e-3",
        "train.log_every=10")
    cli("finetune", f"init={root / 'pre'}", f"train_file={train}", f"dev_file={files.dev}",
        f"output={root / 'cls'}", "max_length=64", "train.max_steps=20", "train.batch_size=16")
    return {"root": root, "pre": root / "pre", "cls": root / "cls", "tok": root / "tok",
            "test": files.test, "dev": files.dev}


def real_batch(tok_dir: Path, pairs: bool) -> dict[str, torch.Tensor]:
    """A padded batch of real sentences of different lengths (pairs for NSP)."""
    tokenizer = load_tokenizer(tok_dir)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    tokenizer.enable_truncation(64)
    texts = ["这本书很好看，值得一读。", "质量太差了", "１９９８年新年讲话发表后，全国各地反响热烈。", "好"]
    inputs = [(t, texts[(i + 1) % 4]) for i, t in enumerate(texts)] if pairs else texts
    enc = tokenizer.encode_batch(inputs)
    return {
        "input_ids": torch.tensor([e.ids for e in enc]),
        "attention_mask": torch.tensor([e.attention_mask for e in enc]),
        "token_type_ids": torch.tensor([e.type_ids for e in enc]),
    }


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def test_pretraining_lowers_mlm_loss(pipeline: dict[str, Path]) -> None:
    summary = json.loads((pipeline["pre"] / "summary.json").read_text())
    assert summary["end"]["val_mlm_loss"] < summary["start"]["val_mlm_loss"] - 0.5, summary


def test_pretraining_export_matches_transformers(pipeline: dict[str, Path]) -> None:
    from transformers import BertForPreTraining

    final = pipeline["pre"] / "final"
    ours = PretrainingModel(read_checkpoint(final).cfg)
    load_into(ours, read_checkpoint(final), require_heads=True)
    theirs = BertForPreTraining.from_pretrained(final)
    ours.eval(), theirs.eval()
    batch = real_batch(final, pairs=True)
    assert (batch["attention_mask"] == 0).any(), "the batch must contain padding"
    with torch.no_grad():
        out = ours(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        ref = theirs(**batch)
    real = batch["attention_mask"].bool()
    mlm_diff = max_abs(out.mlm_logits[real], ref.prediction_logits[real])
    nsp_diff = max_abs(out.nsp_logits, ref.seq_relationship_logits)
    assert mlm_diff < 1e-4, f"MLM logits max-abs diff {mlm_diff:.2e}"
    assert nsp_diff < 1e-4, f"NSP logits max-abs diff {nsp_diff:.2e}"


def test_classifier_export_matches_transformers(pipeline: dict[str, Path]) -> None:
    from transformers import BertForSequenceClassification

    final = pipeline["cls"] / "final"
    ckpt = read_checkpoint(final)
    ours = SequenceClassifier(ckpt.cfg, len(ckpt.hf_config["id2label"]))
    load_into(ours, ckpt, require_heads=True)
    theirs = BertForSequenceClassification.from_pretrained(final)
    ours.eval(), theirs.eval()
    batch = real_batch(final, pairs=False)
    with torch.no_grad():
        diff = max_abs(ours(**batch), theirs(**batch).logits)
    assert diff < 1e-4, f"classifier logits max-abs diff {diff:.2e}"
    assert theirs.config.id2label == {0: "0", 1: "1"}


def test_evaluate_predict_and_export_verbs(pipeline: dict[str, Path], capsys: pytest.CaptureFixture) -> None:
    results = pipeline["root"] / "results.md"
    cli("evaluate", f"model={pipeline['cls']}", f"file={pipeline['dev']}", f"output={results}")
    assert "accuracy" in results.read_text()
    capsys.readouterr()
    cli("predict", f"model={pipeline['cls']}", "text=[这本书很好看, 太差了]")
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in rows] == ["这本书很好看", "太差了"]
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-5 for r in rows)

    from transformers import BertForMaskedLM, BertModel

    cli("export", f"model={pipeline['pre']}", "architecture=BertForMaskedLM",
        f"output={pipeline['root'] / 'mlm'}")
    _, info = BertForMaskedLM.from_pretrained(pipeline["root"] / "mlm", output_loading_info=True)
    assert not info["missing_keys"], info
    cli("export", f"model={pipeline['pre']}", "architecture=BertModel",
        f"output={pipeline['root'] / 'bare'}")
    BertModel.from_pretrained(pipeline["root"] / "bare")
