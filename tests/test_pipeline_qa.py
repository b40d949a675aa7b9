"""Extractive QA end to end through the CLI on a hand-made SQuAD v2.0 file.

tokenizer → finetune task=qa (random init, tiny) → evaluate (EM / F1, with the unanswerable
share) → predict (CLI and `plmkit.load_reader`: answers with exact character offsets, long
contexts windowed, "no answer" as ("", -1, -1)) → the exported `BertForQuestionAnswering` gives
Transformers the same logits. A wrong answer offset in the file is reported, not dropped.
tests/tasks/test_qa.py checks the decoder; tests/test_bad_input_tasks.py the user's mistakes.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

import plmkit
from plmkit.checkpoint import load_into, read_checkpoint
from plmkit.cli import main
from plmkit.models.heads import SpanExtractor

CONTEXTS = [
    "The Amazon river flows through Brazil and Peru. It is the largest river by discharge.",
    "Marie Curie won the Nobel Prize in Physics in 1903 and in Chemistry in 1911.",
    "The city of Lyon lies at the confluence of the Rhone and the Saone rivers in France.",
]


def squad_v2(path: Path, wrong_offset: bool = False) -> Path:
    def qa(qid: str, question: str, context: str, answer: str | None) -> dict:
        if answer is None:
            return {"id": qid, "question": question, "answers": [], "is_impossible": True}
        start = context.index(answer) + (3 if wrong_offset and qid == "q0" else 0)
        return {"id": qid, "question": question, "is_impossible": False,
                "answers": [{"text": answer, "answer_start": start}]}

    paragraphs = [
        {"context": CONTEXTS[0], "qas": [qa("q0", "Which countries does the Amazon flow through?",
                                            CONTEXTS[0], "Brazil and Peru"),
                                         qa("q1", "Who painted the Mona Lisa?", CONTEXTS[0], None)]},
        {"context": CONTEXTS[1], "qas": [qa("q2", "When did Curie win the Physics prize?",
                                            CONTEXTS[1], "1903"),
                                         qa("q3", "What did Curie win in 1911?", CONTEXTS[1],
                                            "Chemistry")]},
        {"context": CONTEXTS[2], "qas": [qa("q4", "Where is Lyon?", CONTEXTS[2], "France"),
                                         qa("q5", "How tall is the Eiffel tower?", CONTEXTS[2], None)]},
    ]
    path.write_text(json.dumps({"version": "v2.0", "data": [{"title": "t", "paragraphs": paragraphs}]}),
                    encoding="utf-8")
    return path


def cli(*args: str) -> None:
    code = main(list(args))
    assert code == 0, f"plmkit {' '.join(args)} exited {code}"


@pytest.fixture(scope="module")
def qa_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("qa")
    corpus = root / "text.txt"
    corpus.write_text("\n".join(CONTEXTS * 20) + "\n", encoding="utf-8")
    cli("tokenizer", f"inputs={corpus}", f"output={root / 'tok'}", "vocab_size=200", "min_frequency=1")
    train = squad_v2(root / "train.json", wrong_offset=True)
    dev = squad_v2(root / "dev.json")
    cli("finetune", "task=qa", f"tokenizer={root / 'tok'}", f"train_file={train}",
        f"dev_file={dev}", f"output={root / 'run'}", "model.hidden_size=32", "model.num_layers=1",
        "model.num_heads=2", "model.intermediate_size=64", "model.max_position=64",
        "max_length=64", "qa.stride=16", "qa.max_question_length=16", "train.max_steps=30",
        "train.batch_size=4", "train.lr=3e-3", "train.threads=1")
    return {"root": root, "run": root / "run", "dev": dev}


def test_a_wrong_answer_offset_is_reported(qa_run: dict[str, Path], capsys) -> None:
    from plmkit.tasks.qa.answers import read_questions

    examples = read_questions(str(qa_run["root"] / "train.json"))
    assert len(examples) == 6
    assert "1 with an answer_start that did not match" in capsys.readouterr().out


def test_finetune_reports_em_and_f1(qa_run: dict[str, Path]) -> None:
    summary = json.loads((qa_run["run"] / "summary.json").read_text())
    assert summary["metric"] == "squad"
    assert {"em", "f1", "has_ans_em", "no_ans_em"} <= set(summary["dev"]), summary
    predictions = json.loads((qa_run["run"] / "dev-predictions.json").read_text())
    assert set(predictions) == {f"q{i}" for i in range(6)}
    for qid, text in predictions.items():  # whatever a tiny model answers lies in its context
        context = CONTEXTS[int(qid[1]) // 2]
        assert text in context, (qid, text)


def test_evaluate_scores_the_dev_file(qa_run: dict[str, Path], tmp_path: Path) -> None:
    cli("evaluate", f"model={qa_run['run']}", f"file={qa_run['dev']}", f"output={tmp_path / 'r.md'}")
    table = (tmp_path / "r.md").read_text()
    assert "em" in table and "f1" in table


def test_evaluate_reads_a_plain_transformers_qa_directory(qa_run: dict[str, Path],
                                                          tmp_path: Path) -> None:
    """The same model without plmkit's notes in config.json (as Transformers saves it) is still
    scored as QA, with Transformers' usual windows scaled to this tiny model's 64 positions."""
    plain = tmp_path / "plain"
    shutil.copytree(qa_run["run"] / "final", plain)
    config = json.loads((plain / "config.json").read_text())
    assert config.pop("plmkit_task")["task"] == "qa"
    (plain / "config.json").write_text(json.dumps(config))
    cli("evaluate", f"model={plain}", f"file={qa_run['dev']}", f"output={tmp_path / 'b.md'}")
    header, _, row = (tmp_path / "b.md").read_text().splitlines()
    scores = dict(zip(header.replace(" ", "").split("|"), row.split("|"), strict=True))
    assert {"em", "f1", "has_ans_count"} <= set(scores) and int(scores["examples"]) == 6


def test_predict_from_the_command_line_and_from_jsonl(qa_run: dict[str, Path],
                                                      tmp_path: Path) -> None:
    questions = ["Which countries does the Amazon flow through?", "When did Curie win?"]
    cli("predict", f"model={qa_run['run']}", f"question={questions[0]}", f"context={CONTEXTS[0]}",
        f"question={questions[1]}", f"context={CONTEXTS[1]}", f"output={tmp_path / 'a.jsonl'}")
    jsonl = tmp_path / "q.jsonl"
    jsonl.write_text("".join(json.dumps({"question": q, "context": c}) + "\n"
                             for q, c in zip(questions, CONTEXTS, strict=False)), encoding="utf-8")
    cli("predict", f"model={qa_run['run']}", f"file={jsonl}", f"output={tmp_path / 'b.jsonl'}")
    for name in ("a.jsonl", "b.jsonl"):
        rows = [json.loads(line) for line in (tmp_path / name).read_text().splitlines()]
        assert [r["question"] for r in rows] == questions
        for row, context in zip(rows, CONTEXTS, strict=False):
            assert row["context"] == context
            if row["start"] == -1:  # no answer
                assert row["answer"] == "" and row["end"] == -1
            else:
                assert context[row["start"] : row["end"]] == row["answer"] != ""
    assert (tmp_path / "a.jsonl").read_text() == (tmp_path / "b.jsonl").read_text()


def test_predict_on_a_squad_file_answers_as_evaluate_does(qa_run: dict[str, Path],
                                                           tmp_path: Path) -> None:
    cli("predict", f"model={qa_run['run']}", f"file={qa_run['dev']}", f"output={tmp_path / 'p.jsonl'}")
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    # One decoder: the answers fine-tuning scored on the dev file are the answers predict gives.
    dev_predictions = json.loads((qa_run["run"] / "dev-predictions.json").read_text())
    assert {r["id"]: r["answer"] for r in rows} == dev_predictions
    for row in rows:
        context = CONTEXTS[int(row["id"][1]) // 2]
        assert context[row["start"] : row["end"]] == row["answer"]  # ("", -1, -1) too


def test_reader_offsets_stay_in_a_long_context(qa_run: dict[str, Path]) -> None:
    reader = plmkit.load_reader(qa_run["run"])
    assert reader.max_length == 64 and reader.allow_null
    long_context = " ".join(CONTEXTS * 4)  # several 64-token windows
    questions = ["Where is Lyon?", "When did Curie win the Physics prize?"]
    contexts = [long_context, CONTEXTS[1]]
    reader.qa = dataclasses.replace(reader.qa, null_threshold=float("inf"))  # always a span
    for context, answer in zip(contexts, reader.answer(questions, contexts), strict=True):
        assert answer.found and 0 <= answer.start < answer.end <= len(context)
        assert context[answer.start : answer.end] == answer.text
    reader.qa = dataclasses.replace(reader.qa, null_threshold=-float("inf"))  # never a span
    for answer in reader.answer(questions, contexts):
        assert (answer.text, answer.start, answer.end, answer.found) == ("", -1, -1, False)


@torch.no_grad()
def test_qa_export_matches_transformers(qa_run: dict[str, Path]) -> None:
    from transformers import BertForQuestionAnswering

    final = qa_run["run"] / "final"
    hf = BertForQuestionAnswering.from_pretrained(final, attn_implementation="eager").eval()
    checkpoint = read_checkpoint(final)
    ours = SpanExtractor(checkpoint.cfg).eval()
    load_into(ours, checkpoint, require_heads=True, architecture="BertForQuestionAnswering")
    ids = torch.tensor([[2, 20, 30, 3, 40, 50, 3, 0], [2, 21, 31, 41, 3, 51, 61, 3]])
    mask = (ids != 0).long()
    theirs, mine = hf(input_ids=ids, attention_mask=mask), ours(ids, mask)
    diff = max((mine.start - theirs.start_logits)[mask.bool()].abs().max().item(),
               (mine.end - theirs.end_logits)[mask.bool()].abs().max().item())
    assert diff < 1e-4, f"QA logits: max abs diff {diff:.2e}"
