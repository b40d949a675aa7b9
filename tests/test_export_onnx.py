"""The ONNX forms of a fine-tuned classifier: export checked against PyTorch, int8, the gate,
and one predictor for every form, the ONNX ones in a process where importing torch fails.

A small classifier is fine-tuned from random init on a slice of the demo's real reviews; every
form is exported through `plmkit export` and compared with the PyTorch model numerically.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import plmkit
from plmkit.cli import main
from plmkit.stages import export_onnx
from plmkit.stages.demo_data import build_demo_data

TINY = ["model.hidden_size=32", "model.num_layers=2", "model.num_heads=2",
        "model.intermediate_size=64", "model.max_position=64"]
TEXTS = ["质量很好，非常满意", "太差了", "好", "这本书内容空洞，" * 20,  # the last is cut to max_length
         ("物流很快", "包装也不错")]  # a pair is read as two sentences of one input


def cli(*args: str) -> int:
    return main(list(args))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("onnx")
    files = build_demo_data(root / "data")
    corpus = root / "corpus.txt"
    corpus.write_text(files.unlabelled.read_text(encoding="utf-8")[:200_000], encoding="utf-8")
    lines = files.dev.read_text(encoding="utf-8").splitlines(True)
    dev = root / "dev.tsv"
    dev.write_text("".join(lines[:201]), encoding="utf-8")
    assert cli("tokenizer", f"inputs={corpus}", f"output={root / 'tok'}", "vocab_size=2000") == 0
    assert cli("finetune", f"tokenizer={root / 'tok'}", f"train_file={files.train}",
               f"dev_file={dev}", f"output={root / 'cls'}", "max_length=64", *TINY,
               "train.max_steps=150", "train.batch_size=16", "train.lr=1e-3") == 0
    assert cli("export", f"model={root / 'cls'}", "format=onnx,int8", f"eval_file={dev}",
               f"output={root / 'forms'}") == 0
    return {"root": root, "cls": root / "cls", "dev": dev, "forms": root / "forms"}


def test_export_writes_checked_onnx_and_int8_forms_with_a_gate_table(trained) -> None:
    forms = trained["forms"]
    reports = json.loads((forms / "gate.json").read_text())
    assert [r["form"] for r in reports] == ["pytorch fp32", "onnx fp32", "onnx int8, per tensor",
                                            "onnx int8, per channel"]
    source, fp32, *int8 = reports
    assert fp32["delta"] == 0.0 and fp32["agreement"] == 1.0, fp32
    assert sum(r["kept"] for r in int8) == 1  # the better of the two granularities is written
    assert all(r["p50_ms"] > 0 and r["p95_ms"] >= r["p50_ms"] and r["rows_per_s"] > 0 for r in reports)
    config = json.loads((forms / "onnx" / "config.json").read_text())
    assert config["plmkit_form"]["form"] == "onnx"
    assert config["plmkit_form"]["max_abs_diff"] <= 1e-4
    assert "| onnx fp32" in (forms / "gate.md").read_text()
    # int8: the weight matmuls are integer, the classifier head and the embeddings stay fp32
    graph = onnx.load(str(forms / "int8" / "model.onnx")).graph
    ops = {node.op_type for node in graph.node}
    assert "MatMulInteger" in ops or "DynamicQuantizeLinear" in ops, ops
    names = {i.name: i.data_type for i in graph.initializer}
    head = [n for n in names if n.startswith("classifier.weight")]  # may be stored transposed
    assert head and all(names[n] == onnx.TensorProto.FLOAT for n in head), head
    assert names["encoder.embeddings.word.weight"] == onnx.TensorProto.FLOAT
    assert any(n.endswith("_quantized") for n in names)


def test_every_form_predicts_what_pytorch_predicts(trained) -> None:
    ours = plmkit.load(trained["cls"]).predict(TEXTS)
    exported = plmkit.load(trained["forms"] / "onnx")
    assert exported.task == "classification" and exported.form == "onnx"
    for a, b in zip(exported.predict(TEXTS), ours, strict=True):
        assert a["label"] == b["label"]
        diff = max(abs(a["probabilities"][k] - b["probabilities"][k]) for k in b["probabilities"])
        assert diff < 1e-5, f"probabilities differ by {diff:.2e}"
    int8 = plmkit.load(trained["forms"] / "int8").predict(TEXTS)
    assert [set(p["probabilities"]) for p in int8] == [set(p["probabilities"]) for p in ours]


def test_onnx_forms_run_where_torch_cannot_be_imported(trained, tmp_path: Path) -> None:
    expected = plmkit.load(trained["cls"]).predict(TEXTS[:3])
    out = tmp_path / "predictions.jsonl"
    script = f"""
import json, sys
sys.modules["torch"] = None  # `import torch` now raises ImportError
import plmkit
from plmkit.cli import main
for form in ("onnx", "int8"):
    print(json.dumps(plmkit.load({str(trained['forms'])!r} + "/" + form).predict({TEXTS[:3]!r})))
code = main(["predict", "model={trained['forms'] / 'onnx'}", "text=质量很好，非常满意", "output={out}"])
assert code == 0, code
assert "torch" not in [m.split(".")[0] for m in sys.modules if sys.modules[m] is not None]
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    onnx_out, int8_out = (json.loads(line) for line in done.stdout.strip().splitlines()[-2:])
    assert [p["label"] for p in onnx_out] == [p["label"] for p in expected]
    assert len(int8_out) == 3
    line = json.loads(out.read_text(encoding="utf-8"))
    assert line["text"] == "质量很好，非常满意" and line["label"] == expected[0]["label"]


def test_int8_alone_is_the_output_directory(trained, tmp_path: Path) -> None:
    out = tmp_path / "int8"
    assert cli("export", f"model={trained['cls']}", "format=int8", "per_channel=true",
               f"eval_file={trained['dev']}", f"output={out}") == 0
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == []  # no fp32 form left
    assert json.loads((out / "config.json").read_text())["plmkit_form"]["per_channel"] is True
    assert len(plmkit.load(out).predict(TEXTS)) == len(TEXTS)


def test_the_gate_refuses_a_broken_quantization(trained, tmp_path: Path, monkeypatch, capsys) -> None:
    """A deliberately broken int8 (its token embeddings quantized to 0: every sentence looks
    the same) scores far below the source, so the gate writes the other forms and not it."""
    real = export_onnx.quantize_int8

    def embeddings_to_zero(source, target, per_channel, keep_fp32):
        kept = real(source, target, per_channel, keep_fp32)
        model = onnx.load(str(target))
        for init in model.graph.initializer:
            if init.name == "encoder.embeddings.word.weight":
                init.CopyFrom(numpy_helper.from_array(
                    np.zeros_like(numpy_helper.to_array(init)), init.name))
        onnx.save(model, str(target))
        return kept

    monkeypatch.setattr(export_onnx, "quantize_int8", embeddings_to_zero)
    out = tmp_path / "gated"
    code = cli("export", f"model={trained['cls']}", "format=onnx,int8", "per_channel=false",
               f"eval_file={trained['dev']}", f"output={out}")
    err = capsys.readouterr().err
    assert code != 0 and "not written: onnx int8, per tensor" in err, err
    assert (out / "onnx" / "model.onnx").is_file() and not (out / "int8").exists()
    reports = json.loads((out / "gate.json").read_text())
    assert reports[0]["value"] > 0.6 and reports[-1]["delta"] < -1.0, reports
    assert "no: Δ below −1.0" in (out / "gate.md").read_text()


@pytest.mark.parametrize("args, message", [
    (["format=tflite"], "format must be hf, or one or more of onnx, int8"),
    (["format=onnx"], "give eval_file="),
    (["format=onnx", "max_drop=-1", "eval_file=DEV"], "max_drop is in points and must be ≥ 0"),
    (["format=int8", "per_channel=sometimes", "eval_file=DEV"], "per_channel must be auto, true or false"),
])
def test_bad_export_requests_say_why_and_write_nothing(trained, tmp_path: Path, capsys,
                                                       args: list[str], message: str) -> None:
    out = tmp_path / "nothing"
    args = [a.replace("DEV", str(trained["dev"])) for a in args]
    assert cli("export", f"model={trained['cls']}", f"output={out}", *args) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_what_the_onnx_forms_cannot_take_is_one_line(trained, tmp_path: Path, capsys) -> None:
    import transformers

    gpt = tmp_path / "gpt"  # a generative model: no ONNX form for it
    config = transformers.GPT2Config(vocab_size=100, n_embd=32, n_layer=1, n_head=2, n_positions=32,
                                     bos_token_id=1, eos_token_id=2)
    transformers.GPT2LMHeadModel(config).save_pretrained(gpt)
    capsys.readouterr()
    other = tmp_path / "other-labels.tsv"
    other.write_text("text\tlabel\n质量很好\tpositive\n", encoding="utf-8")
    notok = tmp_path / "no-tokenizer"
    notok.mkdir()
    for name in ("model.onnx", "config.json"):
        (notok / name).write_bytes((trained["forms"] / "onnx" / name).read_bytes())
    cases = [
        (["export", f"model={trained['forms'] / 'int8'}", "format=int8"], "is already an ONNX form (int8)"),
        (["export", f"model={gpt}", "format=onnx"], "is a GPT2LMHeadModel model; the ONNX forms cover"),
        (["export", f"model={trained['cls']}", "format=onnx", f"eval_file={other}"],
         "other-labels.tsv:2: label 'positive' is not in the label set"),
        (["predict", f"model={notok}", "text=好"], "an ONNX form without its tokenizer"),
    ]
    for args, message in cases:
        out = tmp_path / "nothing"
        extra = [f"output={out}"] if args[0] == "export" else []
        if args[0] == "export" and not any(a.startswith("eval_file=") for a in args):
            extra.append(f"eval_file={trained['dev']}")
        assert cli(*args, *extra) == 2, args
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
        assert not out.exists()


def test_an_export_that_drifts_from_pytorch_writes_nothing(trained, tmp_path: Path, monkeypatch,
                                                           capsys) -> None:
    monkeypatch.setattr("plmkit.export.onnx.TOLERANCE", -1.0)  # any difference now fails
    out = tmp_path / "drift"
    assert cli("export", f"model={trained['cls']}", "format=onnx", f"eval_file={trained['dev']}",
               f"output={out}") == 2
    assert "differs from the PyTorch model" in capsys.readouterr().err
    assert not out.exists()
