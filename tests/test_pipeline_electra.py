"""ELECTRA end to end through the CLI, on a slice of the demo's real Chinese data.

tokenizer → prepare → pretrain objective.kind=electra → final/ loads in Transformers as
`ElectraForPreTraining`, final/generator/ as `ElectraForMaskedLM`, both with `AutoTokenizer`,
giving our outputs on a real padded batch → finetune (classification, NER) starts from the
run like from any encoder, and the fine-tuned BERT gives Transformers our logits. Max abs
differences are printed (`pytest -s`) and stated on failure.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import transformers  # a missing test dependency fails, never skips

from plmkit.checkpoint import load_into, read_checkpoint
from plmkit.cli import main
from plmkit.models.electra import Discriminator, Generator
from plmkit.models.heads import SequenceClassifier
from plmkit.stages.demo_data import build_demo_data
from plmkit.tasks.ner.peoples_daily import write_peoples_daily_ner

TINY = ["model.hidden_size=64", "model.num_layers=2", "model.num_heads=2",
        "model.intermediate_size=128", "model.max_position=64"]
TOL = 1e-4
TEXTS = ["这本书很好看，值得一读。", "质量太差了", "１９９８年新年讲话发表后，全国各地反响热烈。", "好"]


def cli(*args: str) -> None:
    code = main(list(args))
    assert code == 0, f"plmkit {' '.join(args)} exited {code}"


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("electra")
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
        "objective.kind=electra", "objective.generator_size=0.5", "objective.seq_len=64",
        "train.max_steps=60", "train.batch_size=16", "train.lr=2e-3", "train.log_every=10")
    cli("finetune", f"init={root / 'pre'}", f"train_file={train}", f"dev_file={files.dev}",
        f"output={root / 'cls'}", "max_length=64", "pooling=cls", "train.max_steps=20",
        "train.batch_size=16")
    return {"root": root, "pre": root / "pre", "cls": root / "cls", "dev": files.dev}


def hf_batch(model_dir: Path) -> dict[str, torch.Tensor]:
    """A padded batch of real sentences, encoded by Transformers' AutoTokenizer from model_dir."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    return dict(tokenizer(TEXTS, padding=True, return_tensors="pt"))


def worst(ours: torch.Tensor, theirs: torch.Tensor, what: str, mask: torch.Tensor | None) -> None:
    diff = (ours - theirs).abs()
    value = (diff[mask.bool()] if mask is not None else diff).max().item()
    print(f"{what}: max abs diff {value:.2e}")
    assert value < TOL, f"{what}: max abs diff {value:.2e} (tolerance {TOL})"


def test_pretraining_trains_both_halves(pipeline: dict[str, Path]) -> None:
    summary = json.loads((pipeline["pre"] / "summary.json").read_text())
    start, end = summary["start"], summary["end"]
    assert summary["objective"] == "electra" and summary["steps"] == 60
    assert end["val_mlm_loss"] < start["val_mlm_loss"] - 0.5, (start, end)  # the generator learns
    assert end["val_disc_loss"] < start["val_disc_loss"], (start, end)
    assert 0.05 < end["val_replaced"] < 0.2, end  # ~mask_prob of the tokens, less the lucky draws


@torch.no_grad()
def test_final_loads_in_transformers_with_our_outputs(pipeline: dict[str, Path]) -> None:
    final = pipeline["pre"] / "final"
    batch = hf_batch(final)
    mask = batch["attention_mask"]
    for directory, name, ours_cls in ((final, "ElectraForPreTraining", Discriminator),
                                      (final / "generator", "ElectraForMaskedLM", Generator)):
        assert transformers.AutoConfig.from_pretrained(directory).architectures == [name]
        theirs = getattr(transformers, name).from_pretrained(
            directory, attn_implementation="eager").eval()
        ckpt = read_checkpoint(directory)
        ours = ours_cls(ckpt.cfg).eval()
        load_into(ours, ckpt, require_heads=True, architecture=name)
        worst(ours(**batch), theirs(**batch).logits, f"{name} logits", mask)
    generator = json.loads((final / "generator" / "config.json").read_text())
    assert generator["hidden_size"] == 32 and generator["embedding_size"] == 64


@torch.no_grad()
def test_finetuning_starts_from_the_discriminator(pipeline: dict[str, Path]) -> None:
    """The encoder finetune reads from the run is Transformers' ElectraModel, and the fine-tuned
    model is a BERT classifier that Transformers runs with our logits."""
    final = pipeline["pre"] / "final"
    batch = hf_batch(final)
    mask = batch["attention_mask"]
    start = SequenceClassifier(read_checkpoint(final).cfg, 2).eval()
    left = load_into(start, read_checkpoint(pipeline["pre"]))
    assert sorted(left) == ["classifier.bias", "classifier.weight", "encoder.pooler.bias",
                            "encoder.pooler.weight"]  # ELECTRA has no pooler; the rest is read
    electra = transformers.ElectraModel.from_pretrained(final, attn_implementation="eager").eval()
    worst(start.encoder(**batch).hidden, electra(**batch).last_hidden_state,
          "encoder read for fine-tuning vs ElectraModel", mask)

    tuned = pipeline["cls"] / "final"
    assert json.loads((tuned / "config.json").read_text())["architectures"] == [
        "BertForSequenceClassification"]
    ckpt = read_checkpoint(tuned)
    ours = SequenceClassifier(ckpt.cfg, 2, pooling="cls").eval()
    load_into(ours, ckpt, require_heads=True)
    theirs = transformers.BertForSequenceClassification.from_pretrained(
        tuned, attn_implementation="eager").eval()
    worst(ours(**batch), theirs(**batch).logits, "fine-tuned classifier logits", None)
    summary = json.loads((pipeline["cls"] / "summary.json").read_text())
    assert 0.0 <= summary["dev"]["accuracy"] <= 1.0


def test_ner_starts_from_an_electra_run(pipeline: dict[str, Path]) -> None:
    files = write_peoples_daily_ner(pipeline["root"] / "ner-data", limit=200)
    out = pipeline["root"] / "ner"
    cli("finetune", "task=ner", f"init={pipeline['pre']}", f"train_file={files['train']}",
        f"dev_file={files['dev']}", f"output={out}", "max_length=64", "train.max_steps=5",
        "train.batch_size=8", "train.threads=1")
    config = json.loads((out / "final" / "config.json").read_text())
    assert config["architectures"] == ["BertForTokenClassification"]
    assert "f1" in json.loads((out / "summary.json").read_text())["dev"]


@torch.no_grad()
def test_export_keeps_an_electra_run_electra(pipeline: dict[str, Path], tmp_path: Path) -> None:
    cli("export", f"model={pipeline['pre']}", f"output={tmp_path / 'auto'}")
    cli("export", f"model={pipeline['pre']}", f"output={tmp_path / 'bare'}",
        "architecture=ElectraModel")
    for sub, name in (("auto", "ElectraForPreTraining"), ("bare", "ElectraModel")):
        config = json.loads((tmp_path / sub / "config.json").read_text())
        assert config["architectures"] == [name], config
    transformers.ElectraModel.from_pretrained(tmp_path / "bare")


def test_an_electra_run_continues_from_an_electra_run(pipeline: dict[str, Path]) -> None:
    """Task-adaptive pretraining after ELECTRA (the demo's second stage): `init=` an ELECTRA run
    takes its discriminator and its generator (whose file has no pooler) and trains on."""
    out = pipeline["root"] / "continued"
    cli("pretrain", f"init={pipeline['pre']}", f"shards={pipeline['root'] / 'shards'}",
        f"output={out}", "objective.kind=electra", "objective.generator_size=0.5",
        "objective.seq_len=64", "train.max_steps=5", "train.batch_size=16")
    before = read_checkpoint(pipeline["pre"] / "final" / "generator").weights
    after = read_checkpoint(out / "final" / "generator").weights
    assert before.keys() == after.keys()
    moved = max((after[k] - before[k]).abs().max().item() for k in before)
    assert moved > 0, "the continued generator did not train"
