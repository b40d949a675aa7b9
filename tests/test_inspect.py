"""Inspection against references: attention maps equal Transformers' eager attention
(`output_attentions=True`) on the exported model, integrated gradients equal captum's, and
gradient × input equals a hand autograd computation; `plmkit inspect` writes PNGs and JSON.

A tiny sentiment classifier is fine-tuned from random init on a slice of the demo's real
reviews (and a tiny tagger on People's Daily): what is checked is the arithmetic, not accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from captum.attr import LayerIntegratedGradients
from transformers import BertForSequenceClassification, BertForTokenClassification

import plmkit
from plmkit.cli import main
from plmkit.models.heads import encoder_from
from plmkit.serve.inspect import (
    attention_maps,
    attention_probabilities,
    attributions,
    baseline_ids,
    encode_value,
)
from plmkit.stages.demo_data import build_demo_data
from plmkit.tasks.ner.peoples_daily import write_peoples_daily_ner

TINY = ["model.hidden_size=32", "model.num_layers=2", "model.num_heads=4",
        "model.intermediate_size=64", "model.max_position=64", "max_length=64"]
TEXT = "质量很好，物流也快，非常满意"
PAIR = ("物流很快", "包装也不错")


def cli(*args: str) -> int:
    return main(list(args))


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("inspect")
    files = build_demo_data(root / "data", n_train=400, n_dev=100, n_test=100)
    corpus = root / "corpus.txt"
    corpus.write_text(files.unlabelled.read_text(encoding="utf-8")[:60_000], encoding="utf-8")
    assert cli("tokenizer", f"inputs={corpus}", f"output={root / 'tok'}", "vocab_size=1500") == 0
    assert cli("finetune", f"tokenizer={root / 'tok'}", f"train_file={files.train}",
               f"dev_file={files.dev}", f"output={root / 'cls'}", *TINY, "pooling=cls",
               "train.max_steps=100", "train.batch_size=16", "train.lr=3e-3",
               "train.threads=1") == 0
    ner = write_peoples_daily_ner(root / "ner", limit=100)
    assert cli("finetune", "task=ner", f"tokenizer={root / 'tok'}", f"train_file={ner['train']}",
               f"dev_file={ner['dev']}", f"output={root / 'tagger'}", *TINY,
               "train.max_steps=3", "train.batch_size=8", "train.threads=1") == 0
    return {"root": root, "cls": root / "cls", "tagger": root / "tagger"}


def _max_diff(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return (ours - theirs).abs().max().item()


@torch.no_grad()
def test_attention_maps_equal_transformers_eager_attention(models) -> None:
    predictor = plmkit.load(models["cls"], device="cpu")
    hf = BertForSequenceClassification.from_pretrained(
        models["cls"] / "final", attn_implementation="eager").eval()
    # a padded batch: a pair and a shorter single text, right-padded as plmkit pads
    (_, pair), (_, single) = (encode_value(predictor.task_model, v) for v in (PAIR, "好"))
    T = pair["input_ids"].shape[1]
    pad = T - single["input_ids"].shape[1]
    batch = {k: torch.cat([pair[k], torch.nn.functional.pad(single[k], (0, pad))])
             for k in pair}
    assert batch["attention_mask"][1].sum() < T  # padding really there
    ours = attention_probabilities(encoder_from(predictor.task_model.model), **batch)
    theirs = hf(**batch, output_attentions=True).attentions
    assert len(ours) == len(theirs) == 2
    diff = max(_max_diff(o, t) for o, t in zip(ours, theirs, strict=True))
    assert diff <= 1e-5, f"padded batch: max abs diff {diff:.2e}"
    # the public API on one text: the same maps as Transformers on that text alone
    maps = attention_maps(predictor, TEXT)
    _, one = encode_value(predictor.task_model, TEXT)
    theirs = torch.stack(hf(**one, output_attentions=True).attentions)[:, 0]  # (L, nh, T, T)
    assert (maps["layers"], maps["heads"]) == (2, 4)
    assert len(maps["tokens"]) == theirs.shape[-1] and maps["tokens"][0] == "[CLS]"
    diff = _max_diff(torch.tensor(maps["attentions"]), theirs)
    assert diff <= 1e-5, f"one text: max abs diff {diff:.2e}"
    print(f"attention vs Transformers eager: max abs diff {diff:.2e}")


@torch.no_grad()
def test_tagger_attention_maps_equal_transformers(models) -> None:
    predictor = plmkit.load(models["tagger"], device="cpu")
    hf = BertForTokenClassification.from_pretrained(
        models["tagger"] / "final", attn_implementation="eager").eval()
    maps = attention_maps(predictor, "江泽民主席在北京会见了记者。")
    _, one = encode_value(predictor.task_model, "江泽民主席在北京会见了记者。")
    theirs = torch.stack(hf(**one, output_attentions=True).attentions)[:, 0]
    diff = _max_diff(torch.tensor(maps["attentions"]), theirs)
    assert diff <= 1e-5, f"tagger: max abs diff {diff:.2e}"


def test_integrated_gradients_equal_captum(models) -> None:
    predictor = plmkit.load(models["cls"], device="cpu")
    tm = predictor.task_model
    model = tm.model.eval()
    for value in (TEXT, PAIR):
        ours = attributions(predictor, value, steps=50)
        _, batch = encode_value(tm, value)
        lig = LayerIntegratedGradients(
            lambda ids, mask, types: model(ids, mask, types), encoder_from(model).embeddings.word)
        theirs = lig.attribute(
            batch["input_ids"], baselines=baseline_ids(tm, batch["input_ids"]),
            additional_forward_args=(batch["attention_mask"], batch["token_type_ids"]),
            target=ours["target_index"], n_steps=50, method="gausslegendre",
            internal_batch_size=16).sum(dim=-1)[0]
        diff = _max_diff(torch.tensor(ours["scores"]), theirs.detach())
        assert diff <= 1e-4, f"{value}: IG vs captum, max abs diff {diff:.2e}"
        assert ours["completeness_gap"] <= 0.01 and ours["steps"] == 50, ours
        assert max(map(abs, ours["scores"])) > 1e-2  # a real signal: the bound above is tight
        print(f"IG vs captum: max abs diff {diff:.2e}, completeness gap {ours['completeness_gap']:.2e}")
    assert ours["target"] in tm.settings.labels.names
    few = attributions(predictor, TEXT, steps=2)  # too few: doubled until the sums add up
    assert few["completeness_gap"] <= 0.01 or few["steps"] == 16, few
    assert few["steps"] in (2, 4, 8, 16)


def test_grad_x_input_equals_hand_autograd(models) -> None:
    predictor = plmkit.load(models["cls"], device="cpu")
    tm = predictor.task_model
    ours = attributions(predictor, TEXT, method="grad_x_input", target="0")
    assert (ours["target"], ours["target_index"]) == ("0", 0)
    _, batch = encode_value(tm, TEXT)
    model = tm.model.eval()
    emb = encoder_from(model).embeddings
    x = emb.word(batch["input_ids"]).detach().requires_grad_(True)  # (1, T, E)
    # the embeddings' forward written out by hand, then the rest of the model as it is
    T = x.shape[1]
    h = emb.norm(x + emb.token_type(batch["token_type_ids"]) + emb.position(torch.arange(T)))
    mask = batch["attention_mask"].bool()[:, None, None, :]
    for layer in encoder_from(model).layers:
        h = layer(h, mask)
    logit = model.classifier(torch.tanh(encoder_from(model).pooler(h[:, 0])))[0, 0]
    (grad,) = torch.autograd.grad(logit, x)
    expected = (grad * x).sum(dim=-1)[0].detach()
    diff = _max_diff(torch.tensor(ours["scores"]), expected)
    assert diff <= 1e-5, f"grad x input: max abs diff {diff:.2e}"


def test_cli_writes_pngs_and_json(models, tmp_path: Path, capsys) -> None:
    out = tmp_path / "look"
    assert cli("inspect", f"model={models['cls']}", f"text={TEXT}", "layer=1", "head=0",
               "steps=20", f"output={out}") == 0
    shown = capsys.readouterr().out
    data = json.loads((out / "inspect.json").read_text(encoding="utf-8"))
    assert set(data) >= {"attention", "attributions"}
    top = max(zip(data["attributions"]["scores"], data["attributions"]["tokens"]),
              key=lambda st: abs(st[0]))[1]
    assert top in shown
    for name in ("attention.png", "attributions.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out2 = tmp_path / "tagger"
    assert cli("inspect", f"model={models['tagger']}", "text=北京欢迎你", "what=attention",
               f"output={out2}") == 0
    assert (out2 / "attention.png").exists() and not (out2 / "attributions.png").exists()


@pytest.mark.parametrize("args, message", [
    ([], "text"),
    (["text=好", "layer=5"], "layer"),
    (["text=好", "head=4"], "head"),
    (["text=好", "method=saliency"], "method"),
    (["text=好", "what=everything"], "what"),
])
def test_cli_bad_input_exits_2(models, tmp_path: Path, capsys, args, message) -> None:
    out = tmp_path / "bad"
    assert cli("inspect", f"model={models['cls']}", *args, f"output={out}") == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_cli_refuses_attributions_for_a_tagger_and_an_onnx_form(models, tmp_path, capsys) -> None:
    assert cli("inspect", f"model={models['tagger']}", "text=北京", "what=attributions",
               f"output={tmp_path / 'a'}") == 2
    assert "classifiers" in capsys.readouterr().err
    onnx = tmp_path / "onnx"
    onnx.mkdir()
    (onnx / "model.onnx").write_bytes(b"")
    (onnx / "config.json").write_text(json.dumps({"plmkit_form": {"form": "onnx"}}))
    assert cli("inspect", f"model={onnx}", "text=好", f"output={tmp_path / 'b'}") == 2
    assert "ONNX" in capsys.readouterr().err
