"""Scores for predictions against gold labels, and the Markdown table that reports them.

Used by `tasks/classification/features.py` (dev scores during fine-tuning, `plmkit evaluate`) and by the
TF-IDF baseline, so every number in a results table comes from the same few lines. The
arithmetic is scikit-learn's and SciPy's, not ours: GLUE-style F1, MCC and correlations have
edge cases (a class never predicted, constant predictions) whose conventions we take from
them rather than re-deriving. The cost is two imports that are slow to load (~1 s), paid only
by the code that scores.
"""

from __future__ import annotations

import math
import statistics
import warnings

import numpy as np

# Reported ×100 with one decimal, as GLUE and CLUE tables print them.
PERCENT_METRICS = (
    "accuracy",
    "acc",
    "f1",
    "mcc",
    "pearson",
    "spearman",
    "precision",
    "recall",
    "em",
)


def classification_metrics(pred: np.ndarray, gold: np.ndarray, num_labels: int) -> dict[str, float]:
    """Accuracy, F1 (of class 1 when binary, else macro) and Matthews correlation."""
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    pred, gold = _flat_pair(pred, gold)
    if num_labels == 2:
        f1 = f1_score(gold, pred, labels=[0, 1], pos_label=1, average="binary", zero_division=0)
    else:  # macro over the classes seen in gold or pred, as scikit-learn and CLUE do
        f1 = f1_score(gold, pred, average="macro", zero_division=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one class only: sklearn warns, and MCC is 0 by convention
        mcc = float(matthews_corrcoef(gold, pred))
    return {"accuracy": float(accuracy_score(gold, pred)), "f1": float(f1), "mcc": mcc}


def regression_metrics(pred: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """Pearson and Spearman correlation (NaN when either side is constant) and mean squared error."""
    from scipy.stats import pearsonr, spearmanr

    pred, gold = _flat_pair(pred.astype(np.float64), gold.astype(np.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant input: SciPy warns and returns NaN; we keep NaN
        pearson = float(pearsonr(pred, gold)[0]) if len(pred) > 1 else math.nan
        spearman = float(spearmanr(pred, gold)[0]) if len(pred) > 1 else math.nan
    return {"pearson": pearson, "spearman": spearman, "mse": float(np.mean((pred - gold) ** 2))}


def _flat_pair(pred: np.ndarray, gold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gold = np.asarray(pred).reshape(-1), np.asarray(gold).reshape(-1)
    if len(pred) != len(gold):
        raise ValueError(f"{len(pred)} predictions for {len(gold)} gold labels")
    if len(gold) == 0:
        raise ValueError("no examples to score")
    return pred, gold


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    """A GitHub/paper-ready Markdown table; accuracy-like scores print as percentages (81.2)."""
    cells = [[format_value(column, row.get(column)) for column in columns] for row in rows]
    numeric = [all(row.get(c) is None or _is_number(row.get(c)) for row in rows) for c in columns]
    widths = [max([len(c)] + [len(line[i]) for line in cells]) for i, c in enumerate(columns)]

    def render(values: list[str]) -> str:
        padded = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = ["-" * (w - 1) + ":" if num else "-" * w for w, num in zip(widths, numeric, strict=True)]
    return "\n".join([render(columns), render(rule)] + [render(line) for line in cells]) + "\n"


def format_value(column: str, value: object) -> str:
    """One table cell: scores ×100 with one decimal, other floats to 3 significant digits."""
    if value is None:
        return ""
    if not _is_number(value):
        return str(value).replace("|", "\\|")
    if isinstance(value, (int, np.integer)):
        return f"{value:,}"
    if math.isnan(value):
        return "n/a"
    name = column.lower().rsplit("/", 1)[-1].split("@")[0]  # eval/recall@5 → recall
    if name in PERCENT_METRICS or name.rsplit("_", 1)[-1] in PERCENT_METRICS:
        return f"{100 * value:.1f}"
    if abs(value) < 1:
        return f"{value:.3f}"
    if abs(value) < 100:
        return f"{value:.3g}"
    return f"{value:,.0f}"


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_))


def spread(values: list[float]) -> dict[str, float]:
    """Median, min and max of one metric over several seeds (what a seeds table reports)."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}
