"""Extractive QA files → `QAExample`s: SQuAD v1.1 / v2.0 JSON and CMRC 2018's own JSON, and (for
`predict`, with no answers) JSON lines of {"question", "context"}.

Where it sits: `read_qa` feeds tasks/qa/features.py (windows, training, decoding) and tasks/qa/scores.py
(EM/F1). Two layouts are read, told apart by their shape:
- SQuAD: {"data": [{"paragraphs": [{"context", "qas": [{"id", "question", "answers":
  [{"text", "answer_start"}], "is_impossible"}]}]}]} (v1.1 has no is_impossible). CMRC 2018
  and DRCD releases in SQuAD form read the same way.
- CMRC 2018 as released: [{"context_id", "context_text", "qas": [{"query_id", "query_text",
  "answers": ["text", ...]}]}]: answers are strings with no position.

Key choice: an answer is never dropped silently. Its position is checked against the context:
an `answer_start` that does not point at the answer text is moved to the occurrence of that
text nearest to it (counted as `relocated`); text found nowhere in the context (or given with no
position, as in CMRC's format, and not found) keeps no position (`unlocated`): it still counts
as a gold answer for EM/F1 but cannot be a training target. A non-string answer (CMRC 2018 dev
holds numbers, some of them spreadsheet date serials) becomes text and is counted too. The
counts come back in a `QAReadReport`, whose `summary()` a stage prints and which is also issued
as a warning, so a caller that ignores the report still hears of it.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from plmkit.runtime.errors import UserError
from plmkit.tasks.tables import json_objects, read_utf8


@dataclass(frozen=True)
class Answer:
    """A gold answer: its text, and its character start in the context (None: not located)."""

    text: str
    start: int | None


@dataclass(frozen=True)
class QAExample:
    """One question over one context, with its gold answers (empty when unanswerable)."""

    qid: str
    question: str
    context: str
    answers: tuple[Answer, ...]
    impossible: bool = False
    source: str = ""


@dataclass
class QAReadReport:
    """What reading found: counts of questions (all, empty ones included) and of answers."""

    source: str
    questions: int = 0
    answers: int = 0
    impossible: int = 0
    relocated: int = 0  # answer_start did not match the text; moved to the nearest occurrence
    unlocated: int = 0  # text not in the context: scored, never trained on
    non_text: int = 0  # numbers and other non-strings, turned into text
    empty_questions: int = 0  # questions with no text: skipped (CMRC 2018 trial has two)
    examples: list[str] = field(default_factory=list)  # a few question ids, for the summary

    def summary(self) -> str:
        """One line for the log."""
        line = f"{self.source}: {self.questions:,} questions ({self.impossible:,} unanswerable), "
        line += f"{self.answers:,} answers"
        issues = [
            f"{n:,} {what}"
            for n, what in (
                (self.relocated, "with an answer_start that did not match (moved to the text)"),
                (self.unlocated, "not found in their context (scored only, not trained on)"),
                (self.non_text, "that were not strings (converted to text)"),
                (self.empty_questions, "questions with no text (skipped)"),
            )
            if n
        ]
        if issues:
            line += "; " + "; ".join(issues) + f"; e.g. question {', '.join(self.examples[:3])}"
        return line

    @property
    def has_issues(self) -> bool:
        """True when some answer was moved, not found or converted."""
        return bool(self.relocated or self.unlocated or self.non_text or self.empty_questions)


def read_qa(
    path: str | Path, *, need_answers: bool = True, limit: int = 0
) -> tuple[list[QAExample], QAReadReport]:
    """Questions of a SQuAD-format or CMRC-2018-format JSON file, and a report of its answers."""
    path = Path(path)
    text = read_utf8(path)
    if not text.strip():
        raise UserError(f"{path}: the file is empty")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(
            f"{path}:{err.lineno}: not valid JSON ({err.msg} at column {err.colno})"
        ) from None
    report = QAReadReport(str(path))
    examples: list[QAExample] = []
    seen: set[str] = set()
    for context, raw_qas, where in _paragraphs(path, data):
        for n, qa in enumerate(raw_qas):
            example = _example(path, f"{where}.qas[{n}]", context, qa, report, need_answers)
            if example is None:
                continue
            if example.qid in seen:
                raise UserError(f"{path}: question id '{example.qid}' appears twice")
            seen.add(example.qid)
            examples.append(example)
            if limit and len(examples) >= limit:
                break
        if limit and len(examples) >= limit:
            break
    if not examples:
        raise UserError(f"{path}: no questions")
    if report.has_issues:
        warnings.warn(report.summary(), stacklevel=2)
    return examples, report


def _paragraphs(path: Path, data: object):
    """(context, list of raw question dicts, JSON path) per paragraph of either layout."""
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        for a, article in enumerate(data["data"]):
            paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
            if not isinstance(paragraphs, list):
                raise UserError(f"{path}: data[{a}] has no 'paragraphs' list (SQuAD format)")
            for p, paragraph in enumerate(paragraphs):
                where = f"data[{a}].paragraphs[{p}]"
                yield _context(path, where, paragraph, "context", "qas")
    elif isinstance(data, list):
        for p, paragraph in enumerate(data):
            yield _context(path, f"[{p}]", paragraph, "context_text", "qas")
    else:
        raise UserError(
            f'{path}: neither SQuAD format ({{"data": [...]}}) nor CMRC 2018 format (a list of passages)'
        )


def _context(path: Path, where: str, paragraph: object, text_key: str, qas_key: str):
    if not isinstance(paragraph, dict):
        raise UserError(f"{path}: {where} is not a JSON object")
    context, qas = paragraph.get(text_key), paragraph.get(qas_key)
    if not isinstance(context, str) or not context.strip():
        raise UserError(f"{path}: {where}: '{text_key}' is missing or empty")
    if not isinstance(qas, list):
        raise UserError(f"{path}: {where}: '{qas_key}' is not a list")
    return context, qas, where


def _example(
    path: Path, where: str, context: str, qa: object, report: QAReadReport, need_answers: bool
) -> QAExample | None:
    """The question at `where`; None (counted) when its text is empty."""
    if not isinstance(qa, dict):
        raise UserError(f"{path}: {where} is not a JSON object")
    qid, question = qa.get("id", qa.get("query_id")), qa.get("question", qa.get("query_text"))
    if not isinstance(qid, (str, int)) or str(qid) == "":
        raise UserError(f"{path}: {where}: no question id ('id' or 'query_id')")
    qid = str(qid)
    if not isinstance(question, str):
        raise UserError(
            f"{path}: {where} (id {qid}): no question text ('question' or 'query_text')"
        )
    if not question.strip():
        report.questions += 1
        report.empty_questions += 1
        _note(report, qid)
        return None
    impossible = bool(qa.get("is_impossible", False))
    raw = qa.get("answers", [])
    if not isinstance(raw, list):
        raise UserError(f"{path}: {where} (id {qid}): 'answers' is not a list")
    answers = () if impossible else tuple(_answer(context, item, qid, report) for item in raw)
    if need_answers and not impossible and not answers:
        raise UserError(f"{path}: {where} (id {qid}): no answers, and not marked is_impossible")
    report.questions += 1
    report.impossible += impossible
    report.answers += len(answers)
    return QAExample(qid, question, context, answers, impossible, str(path))


def _answer(context: str, item: object, qid: str, report: QAReadReport) -> Answer:
    """An Answer with a checked position; moved, unlocated and converted answers are counted."""
    start = None
    if isinstance(item, dict):
        text, start = item.get("text"), item.get("answer_start")
    else:
        text = item
    if not isinstance(text, str):
        report.non_text += 1
        _note(report, qid)
        text = str(int(text)) if isinstance(text, float) and text.is_integer() else str(text)
    if (
        isinstance(start, int)
        and not isinstance(start, bool)
        and context[start : start + len(text)] == text
    ):
        return Answer(text, start)
    found = _nearest(context, text, start if isinstance(start, int) else 0)
    if found is None:
        report.unlocated += 1
        _note(report, qid)
    elif start is not None:
        report.relocated += 1
        _note(report, qid)
    return Answer(text, found)


def _nearest(context: str, text: str, near: int) -> int | None:
    """The start of the occurrence of `text` in `context` closest to `near` (None: absent)."""
    if not text:
        return None
    best, position = None, context.find(text)
    while position >= 0:
        if best is None or abs(position - near) < abs(best - near):
            best = position
        position = context.find(text, position + 1)
    return best


def _note(report: QAReadReport, qid: str) -> None:
    if len(report.examples) < 3 and qid not in report.examples:
        report.examples.append(qid)


# ----------------------------------------------------------------------------- questions to answer


def read_qa_inputs(path: str | Path) -> tuple[list[QAExample], bool]:
    """Questions to answer, and whether they came from a SQuAD/CMRC file (True) or JSONL.

    JSONL holds one {"question": ..., "context": ...} object per line (other keys are ignored);
    a SQuAD or CMRC 2018 JSON file is read by `read_qa`, its answers, if any, unused.
    """
    path = Path(path)
    text = read_utf8(path)
    if not text.strip():
        raise UserError(f"{path}: the file is empty")
    if path.suffix.lower() != ".jsonl":
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None  # more than one JSON value: JSON lines
        if isinstance(data, list) or (isinstance(data, dict) and "data" in data):
            with warnings.catch_warnings():  # answers do not matter here
                warnings.simplefilter("ignore", UserWarning)
                return read_qa(path, need_answers=False)[0], True
    return _jsonl_questions(path, text), False


def _jsonl_questions(path: Path, text: str) -> list[QAExample]:
    """One QAExample per non-blank line of {"question", "context"}; its id is the line number."""
    examples = []
    for number, record in json_objects(path, text, "a JSON object with 'question' and 'context'"):
        for key in ("question", "context"):
            if not isinstance(record.get(key), str):
                raise UserError(f"{path}:{number}: '{key}' is missing or not a string")
            if not record[key].strip():
                raise UserError(f"{path}:{number}: '{key}' is empty")
        examples.append(
            QAExample(str(number), record["question"], record["context"], (), False, str(path))
        )
    return examples
