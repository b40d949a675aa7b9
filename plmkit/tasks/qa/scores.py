"""Exact match and F1 of extractive QA answers: SQuAD's for English, CMRC 2018's for Chinese.

Where it sits: tasks/qa/features.py decodes predicted answer texts; `qa_metrics` scores them against the
gold texts of tasks/qa/data.py. Both definitions are re-written here from their official
evaluation scripts (a few lines each), so scores compare with published numbers:

- SQuAD (`evaluate-v2.0.py`, which reduces to v1.1's on answerable questions): normalise by
  lower-casing, removing ASCII punctuation, removing the articles a/an/the, and collapsing
  whitespace; EM is equality of normalised strings; F1 is the bag-of-tokens overlap of the
  whitespace tokens. Gold answers that normalise to "" are dropped; an unanswerable question has
  the single gold answer "", so only an empty prediction scores 1. Each question takes the best
  score over its gold answers.
- CMRC 2018 (`cmrc2018_evaluate.py`): lower-case and strip; EM compares the strings with the
  listed Chinese and ASCII punctuation removed; F1 segments each string into Chinese characters
  (U+4E00–U+9FA5) and runs of other characters split into words, drops the punctuation, and
  takes the *longest common substring* of the two segment lists as the overlap. The official
  script splits the non-Chinese runs with NLTK's `word_tokenize`; we split them into runs of
  word characters and single other characters, which agrees on the letters-and-digits runs that
  Chinese answers contain; the cost is a small difference on English contractions ("don't").
  Unanswerable questions score as in SQuAD v2.

Scores are fractions in [0, 1] (tasks/metrics.py prints them ×100, as the scripts do).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)
_CHINESE = re.compile("[\u4e00-\u9fa5]")
_OTHER_WORDS = re.compile(r"\w+|[^\w\s]")
# The punctuation list of cmrc2018_evaluate.py (its two-character "……" can never match one
# character there either, so it is left out).
CMRC_PUNCT = frozenset("-:_*^/\\~`+=，。：？！“”；’《》·、「」（）－～『』")
METRICS = ("squad", "cmrc")


# ----------------------------------------------------------------------------- SQuAD


def squad_normalize(text: str) -> str:
    """SQuAD's answer normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def squad_exact(prediction: str, gold: str) -> float:
    """1.0 when the normalised strings are equal."""
    return float(squad_normalize(prediction) == squad_normalize(gold))


def squad_f1(prediction: str, gold: str) -> float:
    """Token-overlap F1 of the normalised strings (1.0 when both are empty)."""
    pred_tokens, gold_tokens = squad_normalize(prediction).split(), squad_normalize(gold).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    return _f1(
        sum((Counter(pred_tokens) & Counter(gold_tokens)).values()), pred_tokens, gold_tokens
    )


# ----------------------------------------------------------------------------- CMRC 2018


def cmrc_segments(text: str) -> list[str]:
    """CMRC's mixed segmentation without punctuation: Chinese characters, other runs as words."""
    out, run = [], ""
    for ch in text.lower().strip():
        if ch in CMRC_PUNCT:
            continue  # dropped; as in the script, it does not end a run of other characters
        if _CHINESE.match(ch):
            out += _OTHER_WORDS.findall(run)
            out.append(ch)
            run = ""
        else:
            run += ch
    return out + _OTHER_WORDS.findall(run)


def cmrc_exact(prediction: str, gold: str) -> float:
    """1.0 when the lower-cased, stripped strings are equal once CMRC's punctuation is removed."""

    def bare(text: str) -> str:
        return "".join(ch for ch in text.lower().strip() if ch not in CMRC_PUNCT)

    return float(bare(prediction) == bare(gold))


def cmrc_f1(prediction: str, gold: str) -> float:
    """F1 whose overlap is the longest common substring of the two segment lists."""
    pred, ref = cmrc_segments(prediction), cmrc_segments(gold)
    if not pred or not ref:
        return float(pred == ref)
    return _f1(_longest_common_substring(pred, ref), pred, ref)


def _longest_common_substring(a: list[str], b: list[str]) -> int:
    """Length of the longest run of segments found, in order and contiguous, in both lists."""
    best, previous = 0, [0] * (len(b) + 1)
    for x in a:
        current = [0] * (len(b) + 1)
        for j, y in enumerate(b):
            if x == y:
                current[j + 1] = previous[j] + 1
                best = max(best, current[j + 1])
        previous = current
    return best


# ----------------------------------------------------------------------------- both


def _f1(common: int, pred: Sequence[str], gold: Sequence[str]) -> float:
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def answer_scores(prediction: str, golds: Sequence[str], metric: str) -> tuple[float, float]:
    """(EM, F1) of one prediction: the best over the gold answers; no gold means unanswerable."""
    exact, f1 = (squad_exact, squad_f1) if metric == "squad" else (cmrc_exact, cmrc_f1)
    if metric == "squad":
        golds = [g for g in golds if squad_normalize(g)]
    if not golds:
        return float(not prediction.strip()), float(not prediction.strip())
    return max(exact(prediction, g) for g in golds), max(f1(prediction, g) for g in golds)


def qa_metrics(
    predictions: Mapping[str, str], golds: Mapping[str, Sequence[str]], metric: str = "squad"
) -> dict[str, float]:
    """Mean EM and F1 over every gold question (a missing prediction scores 0), with the
    answerable (has_ans_*) and unanswerable (no_ans_*) shares when both kinds occur."""
    if metric not in METRICS:
        raise ValueError(f"QA metric '{metric}': use one of {', '.join(METRICS)}")
    if not golds:
        raise ValueError("no questions to score")
    rows = {
        qid: answer_scores(predictions[qid], answers, metric) if qid in predictions else (0.0, 0.0)
        for qid, answers in golds.items()
    }
    out = _means(rows.values(), "")
    has = [rows[q] for q, answers in golds.items() if _answerable(answers, metric)]
    if 0 < len(has) < len(rows):
        out.update(_means(has, "has_ans_"))
        out.update(
            _means([rows[q] for q, a in golds.items() if not _answerable(a, metric)], "no_ans_")
        )
    return out


def _answerable(answers: Sequence[str], metric: str) -> bool:
    return any(squad_normalize(a) for a in answers) if metric == "squad" else bool(answers)


def _means(rows, prefix: str) -> dict[str, float]:
    rows = list(rows)
    return {
        f"{prefix}em": sum(r[0] for r in rows) / len(rows),
        f"{prefix}f1": sum(r[1] for r in rows) / len(rows),
        f"{prefix}count": len(rows),
    }
