"""Extractive QA: SQuAD/CMRC reading, windows with a stride, span decoding, EM/F1.

Expected values come from the data's published counts (shared/data/README.md), from hand-made
SQuAD v2.0 files whose answers we place by hand, from a brute-force search over all spans, and
from scores worked out by hand with the official scripts' definitions; never from our own output.
A throwaway WordPiece tokenizer is trained in-process.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer
from torch import nn

from plmkit.config import TokenizerStageConfig
from plmkit.runtime.errors import UserError
from plmkit.tasks.qa.data import read_qa
from plmkit.tasks.qa.features import (
    NO_CHAR,
    best_spans,
    collate_qa,
    decode_answers,
    encode_qa,
    predict_spans,
    span_loss,
)
from plmkit.tasks.qa.scores import cmrc_exact, cmrc_f1, qa_metrics, squad_f1, squad_normalize
from plmkit.tasks.sampling import SampledBatches
from plmkit.text.tokenizer_training import train_tokenizer

EN = (
    "The Eiffel Tower is in Paris. It was finished in 1889 by the company of Gustave Eiffel. "
    "Paris is the capital of France, and the tower is its most visited monument."
)
ZH = "北京是中华人民共和国的首都，位于华北平原的北部。长城在北京的北边，全长两万多公里。"


def _answer(context: str, text: str, occurrence: int = 0) -> dict:
    start = -1
    for _ in range(occurrence + 1):
        start = context.index(text, start + 1)
    return {"text": text, "answer_start": start}


SQUAD_V2 = {
    "version": "v2.0",
    "data": [
        {
            "title": "Eiffel",
            "paragraphs": [
                {
                    "context": EN,
                    "qas": [
                        {
                            "id": "en1",
                            "question": "Where is the Eiffel Tower?",
                            "answers": [_answer(EN, "Paris")],
                        },
                        {
                            "id": "en2",
                            "question": "When was the tower finished?",
                            "answers": [_answer(EN, "1889")],
                        },
                        {
                            "id": "en3",
                            "question": "Who designed the Louvre?",
                            "answers": [],
                            "is_impossible": True,
                        },
                        {
                            "id": "en4",
                            "question": "What is the capital of France?",
                            "answers": [_answer(EN, "Paris", 1)],
                        },
                        {
                            "id": "en5",
                            "question": "What is the most visited monument?",
                            "answers": [_answer(EN, "the tower")],
                        },
                    ],
                }
            ],
        },
        {
            "title": "北京",
            "paragraphs": [
                {
                    "context": ZH,
                    "qas": [
                        {
                            "id": "zh1",
                            "question": "中国的首都是哪里？",
                            "answers": [_answer(ZH, "北京")],
                        },
                        {
                            "id": "zh2",
                            "question": "长城在哪里？",
                            "answers": [_answer(ZH, "北京的北边")],
                        },
                        {
                            "id": "zh3",
                            "question": "上海有多少人口？",
                            "answers": [],
                            "is_impossible": True,
                        },
                    ],
                }
            ],
        },
    ],
}


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    texts = [EN, ZH] + [
        q["question"] for a in SQUAD_V2["data"] for p in a["paragraphs"] for q in p["qas"]
    ]
    return train_tokenizer(texts * 3, TokenizerStageConfig(vocab_size=150, min_frequency=1))


def write_json(tmp_path: Path, name: str, data: object) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


class PerfectReader(nn.Module):
    """Start and end logits of 10 at each window's gold target (by its token ids), 0 elsewhere."""

    def __init__(self, features) -> None:
        super().__init__()
        self.gold = {
            tuple(ids.tolist()): (int(s), int(e))
            for ids, s, e in zip(features.input_ids, features.starts, features.ends)
        }

    def forward(self, input_ids, attention_mask, token_type_ids):
        start, end = torch.zeros(input_ids.shape), torch.zeros(input_ids.shape)  # (B, T)
        for row in range(len(input_ids)):
            n = int(attention_mask[row].sum())
            s, e = self.gold[tuple(input_ids[row, :n].tolist())]
            start[row, s], end[row, e] = 10.0, 10.0
        return start, end


# ----------------------------------------------------------------------------- reading


def test_cmrc2018_files_match_published_counts(shared_data) -> None:
    with pytest.warns(UserWarning, match="not found in their context"):
        dev, report = read_qa(shared_data / "cmrc2018" / "cmrc2018_dev.json")
    assert len(dev) == report.questions == 3219
    assert report.non_text == 29  # numbers in the JSON, a few of them spreadsheet date serials
    assert report.unlocated > 0 and "not found in their context" in report.summary()
    with pytest.warns(UserWarning, match="2 questions with no text"):
        trial, report = read_qa(shared_data / "cmrc2018" / "cmrc2018_trial.json")
    assert report.questions == 1002 and len(trial) == 1000
    assert (report.relocated, report.unlocated, report.non_text) == (0, 0, 0)
    assert len({ex.context for ex in trial}) == 256
    assert all(
        ex.context[a.start : a.start + len(a.text)] == a.text for ex in trial for a in ex.answers
    )


def test_mismatched_answer_start_is_moved_counted_and_reported(tmp_path) -> None:
    data = json.loads(json.dumps(SQUAD_V2))
    qas = data["data"][0]["paragraphs"][0]["qas"]
    qas[1]["answers"][0]["answer_start"] = 3  # "1889" is not at 3
    qas[0]["answers"].append({"text": "Rome", "answer_start": 0})  # not in the context
    with pytest.warns(UserWarning, match=r"1 with an answer_start that did not match.*1 not found"):
        examples, report = read_qa(write_json(tmp_path, "v2.json", data))
    assert (report.questions, report.impossible, report.relocated, report.unlocated) == (8, 2, 1, 1)
    assert examples[1].answers[0].start == EN.index("1889")
    assert examples[0].answers[1].start is None
    assert "en1" in report.summary() and "en2" in report.summary()


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"data": [{"title": "x"}]}, r"data\[0\] has no 'paragraphs'"),
        (
            {
                "data": [
                    {
                        "paragraphs": [
                            {"context": "c", "qas": [{"id": "a", "question": "q?", "answers": []}]}
                        ]
                    }
                ]
            },
            "no answers, and not marked is_impossible",
        ),
        ({"oops": 1}, "neither SQuAD format"),
        (
            [
                {
                    "context_text": "c",
                    "qas": [{"query_id": "a", "query_text": "q", "answers": ["c"]}] * 2,
                }
            ],
            "question id 'a' appears twice",
        ),
    ],
)
def test_malformed_files_are_user_errors(tmp_path, data, match: str) -> None:
    with pytest.raises(UserError, match=match):
        read_qa(write_json(tmp_path, "bad.json", data))


# ----------------------------------------------------------------------------- windows and decoding


def test_windows_cover_long_contexts_and_targets_are_exact_on_cjk(tmp_path, tokenizer) -> None:
    examples, _ = read_qa(write_json(tmp_path, "v2.json", SQUAD_V2))
    features = encode_qa(
        tokenizer, examples, max_length=24, stride=8, max_question_length=10, training=True
    )
    assert len(features) > 3 * len(examples)  # long contexts: several windows each
    for window in range(len(features)):
        assert len(features.input_ids[window]) <= 24
        example = examples[features.example[window]]
        spans = features.char_spans[window]
        start, end = features.starts[window], features.ends[window]
        if start == 0:
            continue
        answer = example.answers[0]
        assert example.context[spans[start, 0] : spans[end, 1]] == answer.text  # exact on CJK too
    answered = {examples[i].qid for i, s in zip(features.example, features.starts) if s > 0}
    assert answered == {"en1", "en2", "en4", "en5", "zh1", "zh2"}


def test_perfect_logits_score_a_squad_v2_file_exactly(tmp_path, tokenizer) -> None:
    examples, _ = read_qa(write_json(tmp_path, "v2.json", SQUAD_V2))
    features = encode_qa(
        tokenizer, examples, max_length=24, stride=8, max_question_length=10, training=True
    )
    logits = predict_spans(PerfectReader(features), features, batch_size=5)
    predictions = decode_answers(examples, features, logits, allow_null=True, max_answer_length=10)
    texts = {qid: p.text for qid, p in predictions.items()}
    assert texts == {
        "en1": "Paris",
        "en2": "1889",
        "en3": "",
        "en4": "Paris",
        "en5": "the tower",
        "zh1": "北京",
        "zh2": "北京的北边",
        "zh3": "",
    }
    assert predictions["en4"].start == EN.rindex("Paris")  # the second Paris, as the gold says
    golds = {ex.qid: [a.text for a in ex.answers] for ex in examples}
    scores = qa_metrics(texts, golds, "squad")
    assert scores["em"] == scores["f1"] == scores["has_ans_em"] == scores["no_ans_f1"] == 1.0
    assert (scores["count"], scores["has_ans_count"], scores["no_ans_count"]) == (8, 6, 2)
    without_null = decode_answers(examples, features, logits, allow_null=False)
    assert without_null["en3"].text != "" and without_null["en1"].text == "Paris"


def test_decoder_never_leaves_the_context_on_random_logits() -> None:
    rng = np.random.default_rng(0)
    for _ in range(500):
        length = int(rng.integers(4, 60))
        question = int(rng.integers(1, length - 2))
        context = np.zeros(length, dtype=bool)
        context[question + 2 : length - 1] = True  # [CLS] question [SEP] context [SEP]
        start, end = rng.normal(size=length), rng.normal(size=length)
        max_len, n_best = int(rng.integers(1, 8)), int(rng.integers(1, 30))
        found = best_spans(start, end, context, n_best, max_len)
        valid = [
            (start[i] + end[j], i, j)
            for i in range(length)
            for j in range(i, min(length, i + max_len))
            if context[i] and context[j]
        ]
        assert len(found) == min(n_best, len(valid))
        assert [s for s, _, _ in found] == sorted((s for s, _, _ in found), reverse=True)
        assert np.isclose(found[0][0], max(valid)[0]) if valid else not found
        for _, i, j in found:
            assert context[i] and context[j] and i <= j < i + max_len


def test_decoded_spans_on_random_logits_are_slices_of_the_context(tmp_path, tokenizer) -> None:
    examples, _ = read_qa(write_json(tmp_path, "v2.json", SQUAD_V2))
    features = encode_qa(tokenizer, examples, max_length=24, stride=8, max_question_length=10)
    rng = np.random.default_rng(1)
    for _ in range(20):
        logits = [
            (rng.normal(size=len(ids)) * 5, rng.normal(size=len(ids)) * 5)
            for ids in features.input_ids
        ]
        for example in examples:
            prediction = decode_answers(examples, features, logits, n_best=5)[example.qid]
            for candidate in prediction.n_best:
                assert 0 <= candidate.start < candidate.end <= len(example.context)
                assert candidate.text == example.context[candidate.start : candidate.end]


def test_only_context_tokens_have_characters(tmp_path, tokenizer) -> None:
    examples, _ = read_qa(write_json(tmp_path, "v2.json", SQUAD_V2))
    features = encode_qa(tokenizer, examples[:1], max_length=24, stride=8, max_question_length=10)
    question_tokens = len(tokenizer.encode(examples[0].question, add_special_tokens=False).ids)
    spans = features.char_spans[0]
    assert (spans[: question_tokens + 2] == NO_CHAR).all() and (spans[-1] == NO_CHAR).all()
    assert (spans[question_tokens + 2 : -1] != NO_CHAR).all()


def test_stride_that_cannot_advance_is_a_user_error(tokenizer) -> None:
    with pytest.raises(UserError, match="max_length=64 leaves no room"):
        encode_qa(tokenizer, [], max_length=64, stride=32, max_question_length=32)


def test_span_loss_trains_the_targets(tmp_path, tokenizer, single_thread) -> None:
    from plmkit.config import ModelConfig
    from plmkit.models.heads import SpanExtractor

    examples, _ = read_qa(write_json(tmp_path, "v2.json", SQUAD_V2))
    features = encode_qa(
        tokenizer, examples, max_length=48, stride=16, max_question_length=16, training=True
    )
    cfg = ModelConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=32,
        num_layers=1,
        num_heads=2,
        intermediate_size=64,
        max_position=64,
        dropout=0.0,
        attention_dropout=0.0,
    )
    torch.manual_seed(0)
    model = SpanExtractor(cfg)
    batches = SampledBatches(features, len(features), collate_qa, seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(30):
        loss, metrics = span_loss(model, batches.next_batch(0.0))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.5 * first, (first, loss.item(), metrics)


# ----------------------------------------------------------------------------- scores


def test_squad_normalisation_and_f1_by_hand() -> None:
    assert squad_normalize("The  Cat, sat!") == "cat sat"
    assert squad_f1("the cat sat", "A cat sat on the mat") == pytest.approx(2 * 1 * 0.5 / 1.5)
    scores = qa_metrics(
        {"a": "Paris", "b": "London", "c": ""}, {"a": ["paris."], "b": ["Rome"], "c": []}
    )
    assert scores["em"] == pytest.approx(2 / 3)
    assert (scores["has_ans_em"], scores["no_ans_em"]) == (0.5, 1.0)
    assert qa_metrics({}, {"a": ["x"]})["f1"] == 0.0  # a missing prediction scores 0


def test_cmrc_scores_by_hand() -> None:
    assert cmrc_exact("《战国无双3》", "战国无双3") == 1.0
    assert cmrc_f1("北京", "北京市") == pytest.approx(2 * 1 * (2 / 3) / (1 + 2 / 3))
    # Longest common *substring*: 北京 and 市 both match, but not contiguously in the prediction.
    assert cmrc_f1("北京的市", "北京市") == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert cmrc_f1("光荣和ω-force", "光荣和ω force") == pytest.approx(
        2 * (3 / 4) * (3 / 5) / (3 / 4 + 3 / 5)
    )
    scores = qa_metrics({"q": "北京"}, {"q": ["北京市", "北京"]}, "cmrc")
    assert scores["em"] == scores["f1"] == 1.0
