"""A user's mistakes in task files (NER columns and tags, QA JSON and JSONL), through the CLI.

Table-driven like tests/test_bad_input.py: each mistake exits 2 with one line naming the file
and the line (or JSON path, or field), no traceback, and no output left behind. One mistake is
not fatal: SQuAD answers whose offsets do not match their text are kept, counted and reported
in fine-tuning's log. tests/tasks/ checks the readers themselves; this checks what a user sees.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from functools import cached_property
from pathlib import Path

import pytest

from plmkit.cli import main

CONTEXTS = ["The Amazon river flows through Brazil and Peru.",
            "Marie Curie won the Nobel Prize in Physics in 1903."]
TINY = ["model.hidden_size=16", "model.num_layers=1", "model.num_heads=2",
        "model.intermediate_size=32", "model.max_position=64", "max_length=64",
        "qa.stride=16", "qa.max_question_length=16", "train.max_steps=2", "train.batch_size=4"]


def write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text, encoding="utf-8")
    return path


def squad(tmp: Path, name: str, contexts: list[str], offset_errors: bool = False) -> Path:
    """A SQuAD v2 file; with `offset_errors`, q0's answer_start is off by 3 and q2's text is
    nowhere in its context."""
    def answer(qid: str, context: str, text: str) -> dict:
        start = context.find(text) if text in context else 0
        start += 3 if offset_errors and qid == "q0" else 0
        text = "Poland" if offset_errors and qid == "q2" else text
        return {"id": qid, "question": f"Question {qid}?", "is_impossible": False,
                "answers": [{"text": text, "answer_start": start}]}

    paragraphs = [{"context": context, "qas": [
        answer(f"q{2 * i}", context, (context.split() + ["x"] * 3)[2]),
        {"id": f"q{2 * i + 1}", "question": "Who painted it?", "answers": [], "is_impossible": True}]}
        for i, context in enumerate(contexts)]
    return write(tmp, name, json.dumps({"version": "v2.0", "data": [{"paragraphs": paragraphs}]}))


class Env:
    """What the cases share, built once per module on first use: a tokenizer and a QA model."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @cached_property
    def tok(self) -> Path:
        corpus = write(self.root, "corpus.txt", "\n".join(CONTEXTS * 10) + "\n江泽民在北京。\n" * 10)
        assert main(["tokenizer", f"inputs={corpus}", f"output={self.root / 'tok'}",
                     "vocab_size=200", "min_frequency=1"]) == 0
        return self.root / "tok"

    @cached_property
    def qa_run(self) -> tuple[Path, str]:
        """A 2-step QA model trained on a file with two bad offsets, and what finetune printed."""
        train = squad(self.root, "train.json", CONTEXTS, offset_errors=True)
        log = io.StringIO()
        with contextlib.redirect_stdout(log):
            code = main(["finetune", "task=qa", f"tokenizer={self.tok}", f"train_file={train}",
                         f"output={self.root / 'qa'}", *TINY])
        assert code == 0, log.getvalue()
        return self.root / "qa", log.getvalue()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    return Env(tmp_path_factory.mktemp("tasks"))


def ner(env: Env, tmp: Path, train: str, dev: str | None = None) -> list[str]:
    argv = ["finetune", "task=ner", f"tokenizer={env.tok}", f"train_file={write(tmp, 'train.txt', train)}",
            f"output={tmp / 'out'}", *TINY[:5]]
    return argv + ([f"dev_file={write(tmp, 'dev.txt', dev)}"] if dev is not None else [])


def qa_finetune(env: Env, train: Path) -> list[str]:
    return ["finetune", "task=qa", f"tokenizer={env.tok}", f"train_file={train}",
            f"output={train.parent / 'out'}", *TINY]


def predict(env: Env, tmp: Path, *args: str) -> list[str]:
    return ["predict", f"model={env.qa_run[0]}", *args, f"output={tmp / 'out' / 'p.jsonl'}"]


GOOD_NER = "江 B-PER\n泽 I-PER\n民 I-PER\n\n北 B-LOC\n京 I-LOC\n"
EMPTY_CMRC = [{"context_id": "c0", "context_text": CONTEXTS[0],
               "qas": [{"query_id": "a", "query_text": "Where?", "answers": ["Brazil"]}]},
              {"context_id": "c1", "context_text": "", "qas": []}]

# (case id, builder(env, tmp) → argv, fragments the one-line message must contain)
CASES: list[tuple[str, Callable[[Env, Path], list[str]], list[str]]] = [
    ("conll line with an extra column",
     lambda e, t: ner(e, t, GOOD_NER + "\n上 B-LOC x\n"), ["train.txt:8", "expected 2 columns", "found 3"]),
    ("conll line without its tag",
     lambda e, t: ner(e, t, "江 B-PER\n泽\n"), ["train.txt:2", "found 1"]),
    ("dev tag absent from train",
     lambda e, t: ner(e, t, GOOD_NER, "北 B-LOC\n\n微 B-ORG\n软 I-ORG\n"),
     ["dev.txt:3", "'B-ORG'", "'ORG'", "train.txt"]),
    ("squad empty context, finetune",
     lambda e, t: qa_finetune(e, squad(t, "train.json", [CONTEXTS[0], "  "])),
     ["train.json", "data[0].paragraphs[1]", "'context'", "empty"]),
    ("cmrc empty context, finetune",
     lambda e, t: qa_finetune(e, write(t, "cmrc.json", json.dumps(EMPTY_CMRC))),
     ["cmrc.json", "[1]", "'context_text'", "empty"]),
    ("squad empty context, evaluate",
     lambda e, t: ["evaluate", f"model={e.qa_run[0]}", f"file={squad(t, 'dev.json', ['', CONTEXTS[1]])}",
                   f"output={t / 'out' / 'r.md'}"],
     ["dev.json", "data[0].paragraphs[0]", "'context'"]),
    ("predict: more questions than contexts",
     lambda e, t: predict(e, t, "question=Where?", "question=When?", f"context={CONTEXTS[0]}"),
     ["2 question(s)", "1 context(s)"]),
    ("predict: empty context",
     lambda e, t: predict(e, t, "question=Where?", "context= "), ["context 1 is empty"]),
    ("predict: empty question",
     lambda e, t: predict(e, t, "question=", f"context={CONTEXTS[0]}"), ["question 1 is empty"]),
    ("predict: text for a QA model",
     lambda e, t: predict(e, t, "text=hello"), ["question=", "not text="]),
    ("predict: bad JSONL line",
     lambda e, t: predict(e, t, f"file={write(t, 'q.jsonl', json.dumps({'question': 'Where?', 'context': CONTEXTS[0]}) + chr(10) + '{oops' + chr(10))}"),
     ["q.jsonl:2", "not valid JSON"]),
    ("predict: JSONL line without a context",
     lambda e, t: predict(e, t, f"file={write(t, 'q.jsonl', json.dumps({'question': 'Where?'}))}"),
     ["q.jsonl:1", "'context'"]),
    ("predict: JSONL line with an empty context",
     lambda e, t: predict(e, t, f"file={write(t, 'q.jsonl', json.dumps({'question': 'Where?', 'context': ''}))}"),
     ["q.jsonl:1", "'context' is empty"]),
]


@pytest.mark.parametrize(("case", "build", "fragments"), CASES, ids=[c[0] for c in CASES])
def test_task_file_mistake_gives_one_clear_line(case: str, build: Callable[[Env, Path], list[str]],
                                                fragments: list[str], env: Env, tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    argv = build(env, tmp_path)
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, f"{case}: exit {code}, stderr {err!r}"
    assert len(err.splitlines()) == 1, f"{case}: expected one line, got:\n{err}"
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, f"{case}: {fragment!r} not in {err!r}"
    assert not (tmp_path / "out").exists(), f"{case}: left output behind"


def test_squad_offsets_that_do_not_match_are_reported_during_finetune(env: Env) -> None:
    run, log = env.qa_run
    report = [line for line in log.splitlines() if "train.json" in line]
    assert len(report) == 1, log
    # Both answers are kept (2 answers: none dropped), counted, and named by question id.
    assert "4 questions (2 unanswerable), 2 answers" in report[0], report[0]
    assert "1 with an answer_start that did not match" in report[0], report[0]
    assert "1 not found in their context" in report[0], report[0]
    assert "q0" in report[0] and "q2" in report[0], report[0]
    assert (run / "final" / "config.json").is_file()
