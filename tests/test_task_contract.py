"""Every task family through the same steps: fine-tune a few steps → save → `plmkit.load` →
predict, and the predictions equal what `evaluate` scored.

The models are random-init and tiny (a few seconds each); what is checked is the plumbing of
the one task contract, not quality: the loader finds the family a directory holds, `predict`
on raw Python inputs gives the dicts the scorer's predictions are, `evaluate` reports the
dev metrics fine-tuning reported, and the dev predictions file holds those predictions.
A new family adds one CASES entry.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import plmkit
from plmkit.cli import main
from plmkit.config import EvaluateConfig
from plmkit.runtime.errors import UserError
from plmkit.tasks.ner.task import NER
from plmkit.tasks.registry import FAMILIES, load_task_model

BERT = ["model.hidden_size=32", "model.num_layers=1", "model.num_heads=2",
        "model.intermediate_size=64", "model.max_position=64"]
T5 = [*BERT[:-1], "model.num_heads=4", "model.head_dim=8", "model.layer_norm_eps=1e-6"]
STEPS = ["train.max_steps=3", "train.batch_size=4", "train.lr=1e-3", "max_length=48"]

ANIMALS = ["cat", "dog", "horse", "bird", "fish", "cow"]
PLACES = ["Paris", "Lyon", "Berlin", "Rome", "Madrid", "Oslo"]


def sentence(i: int) -> str:
    return f"the {ANIMALS[i % 6]} from {PLACES[(i * 5) % 6]} sat near {PLACES[(i + 2) % 6]} today"


def cli(*args: str) -> None:
    assert main(list(args)) == 0, f"plmkit {' '.join(args)} failed"


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@dataclass
class Case:
    """A family's tiny data: files, extra finetune settings, raw Python inputs of the dev rows."""

    name: str
    family: str
    files: Callable[[Path], tuple[Path, Path, list[str], list[Any]]]


def _classification(root: Path):
    def rows(n: int) -> list[str]:
        return ["text\tlabel"] + [f"{sentence(i)}\t{'pos' if i % 2 else 'neg'}" for i in range(n)]

    inputs = [sentence(i) for i in range(6)]
    return write(root / "train.tsv", rows(16)), write(root / "dev.tsv", rows(6)), [], inputs


def _pairs(root: Path):
    def rows(n: int) -> list[str]:
        return ["a\tb\tlabel"] + [f"{sentence(i)}\t{sentence(i + i % 2)}\t{i % 2}" for i in range(n)]

    inputs = [(sentence(i), sentence(i + i % 2)) for i in range(6)]
    settings = ["table.text_column=a", "table.text_pair_column=b"]
    return write(root / "train.tsv", rows(16)), write(root / "dev.tsv", rows(6)), settings, inputs


def _regression(root: Path):
    def rows(n: int) -> list[str]:
        return ["text\tscore"] + [f"{sentence(i)}\t{i % 5 * 0.5}" for i in range(n)]

    settings = ["task=regression", "table.label_column=score"]
    inputs = [sentence(i) for i in range(6)]
    return write(root / "train.tsv", rows(16)), write(root / "dev.tsv", rows(6)), settings, inputs


def _ner(root: Path):
    def rows(n: int) -> list[str]:
        lines = []
        for i in range(n):
            for word in sentence(i).split():
                lines.append(f"{word}\t{'B-LOC' if word in PLACES else 'O'}")
            lines.append("")
        return lines

    inputs = [sentence(i) for i in range(6)]  # the words joined by spaces: the file's text
    return write(root / "train.txt", rows(16)), write(root / "dev.txt", rows(6)), ["task=ner"], inputs


def _qa(root: Path):
    def squad(n: int) -> dict:
        paragraphs = []
        for i in range(n):
            context = sentence(i)
            place = PLACES[(i * 5) % 6]
            paragraphs.append({"context": context, "qas": [{
                "id": f"q{i}", "question": f"Where is the {ANIMALS[i % 6]} from?",
                "answers": [{"text": place, "answer_start": context.index(place)}]}]})
        return {"version": "1.1", "data": [{"title": "t", "paragraphs": paragraphs}]}

    (root / "train.json").write_text(json.dumps(squad(16)), encoding="utf-8")
    (root / "dev.json").write_text(json.dumps(squad(6)), encoding="utf-8")
    dev = squad(6)["data"][0]["paragraphs"]
    inputs = [(p["qas"][0]["question"], p["context"]) for p in dev]
    return root / "train.json", root / "dev.json", ["task=qa", "qa.stride=8", "qa.max_question_length=16"], inputs


def _matching(root: Path):
    train, dev, settings, inputs = _pairs(root)
    return train, dev, ["task=matching", *settings], inputs


def _seq2seq(root: Path):
    def rows(n: int) -> list[str]:
        return ["source\ttarget"] + [f"{sentence(i)}\t{ANIMALS[i % 6]}" for i in range(n)]

    settings = ["task=seq2seq", "table.text_column=source", "table.label_column=target",
                "max_target_length=8", "generation.max_new_tokens=4"]
    inputs = [sentence(i) for i in range(6)]
    return write(root / "train.tsv", rows(16)), write(root / "dev.tsv", rows(6)), settings, inputs


CASES = [
    Case("classification", "classification", _classification),
    Case("pair classification", "classification", _pairs),
    Case("regression", "classification", _regression),
    Case("ner", "ner", _ner),
    Case("qa", "qa", _qa),
    Case("matching", "matching", _matching),
    Case("seq2seq", "seq2seq", _seq2seq),
]


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tokenizers")
    corpus = write(root / "corpus.txt", [sentence(i) for i in range(200)]
                   + [f"Where is the {a} from?" for a in ANIMALS])
    cli("tokenizer", f"inputs={corpus}", f"output={root / 'wordpiece'}", "vocab_size=200",
        "min_frequency=1", "corpus.doc_split=line")
    cli("tokenizer", f"inputs={corpus}", f"output={root / 'unigram'}", "kind=unigram",
        "vocab_size=160", "corpus.doc_split=line")
    return {"bert": root / "wordpiece", "t5": root / "unigram"}


def same(a, b) -> bool:
    """Equal, floats to 1e-5 (a batch padded differently moves the last digits)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-5)
    return a == b


def test_the_registry_names_each_family_once() -> None:
    names = [f.name for f in FAMILIES]
    tasks = [t for f in FAMILIES for t in f.tasks]
    assert len(set(names)) == len(names) and len(set(tasks)) == len(tasks)
    assert {c.family for c in CASES} == {f.name for f in FAMILIES if f.finetunable}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_family_finetunes_saves_loads_and_predicts_what_evaluate_scored(
    case: Case, tokenizers: dict[str, Path], tmp_path: Path
) -> None:
    train, dev, settings, inputs = case.files(tmp_path)
    shape = T5 if case.family == "seq2seq" else BERT
    tokenizer = tokenizers["t5" if case.family == "seq2seq" else "bert"]
    run = tmp_path / "run"
    cli("finetune", f"tokenizer={tokenizer}", f"train_file={train}", f"dev_file={dev}",
        f"output={run}", *shape, *STEPS, *settings)
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))

    predictor = plmkit.load(run, device="cpu")
    assert predictor.task == case.family
    predicted = predictor.predict(inputs)

    tm = load_task_model(run, device="cpu")
    rows = tm.family.read(dev, tm.settings, 0)
    metrics, scored = tm.family.score(tm, rows, 64)
    assert same(predicted, scored), (predicted, scored)

    evaluated = plmkit.evaluate(EvaluateConfig(model=str(run), file=str(dev),
                                               output=str(tmp_path / "eval.md")))
    assert same(evaluated, metrics) and same(evaluated, summary["dev"]), (evaluated, summary["dev"])

    name, text = tm.family.dump(rows, scored)
    assert (run / name).read_text(encoding="utf-8") == text  # fine-tuning's dev predictions


def test_a_task_loader_refuses_a_model_of_another_task(tokenizers: dict[str, Path],
                                                      tmp_path: Path, capsys) -> None:
    train, dev, settings, _ = _classification(tmp_path)
    run = tmp_path / "cls"
    cli("finetune", f"tokenizer={tokenizers['bert']}", f"train_file={train}", f"output={run}",
        *BERT, *STEPS)
    code = main(["evaluate", f"model={run}", f"file={dev}"])  # fine: a classifier
    assert code == 0
    capsys.readouterr()
    with pytest.raises(UserError, match="not an extractive QA model"):
        plmkit.load_reader(run)
    with pytest.raises(UserError, match="cannot generate"):
        plmkit.load_generator(run)
    with pytest.raises(UserError, match=r"not a token classifier \(NER\) \(classification\)"):
        load_task_model(run, family=NER)

