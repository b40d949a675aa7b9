"""Metrics agree with hand-computed values and with scikit-learn/SciPy; tables format as papers print."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import f1_score, matthews_corrcoef

from plmkit.tasks.metrics import (
    classification_metrics,
    format_value,
    markdown_table,
    regression_metrics,
)


def test_binary_metrics_match_hand_computed_counts():
    gold = np.array([1, 1, 0, 0, 1])
    pred = np.array([1, 0, 0, 1, 1])  # TP 2, FN 1, FP 1, TN 1
    scores = classification_metrics(pred, gold, num_labels=2)
    assert scores["accuracy"] == pytest.approx(3 / 5)
    assert scores["f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert scores["mcc"] == pytest.approx((2 * 1 - 1 * 1) / math.sqrt(3 * 3 * 2 * 2))


def test_binary_f1_is_of_class_one_like_sklearn():
    rng = np.random.default_rng(0)
    gold, pred = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    scores = classification_metrics(pred, gold, num_labels=2)
    assert scores["f1"] == pytest.approx(f1_score(gold, pred, pos_label=1))
    assert scores["mcc"] == pytest.approx(matthews_corrcoef(gold, pred))


def test_multiclass_f1_is_macro_like_sklearn():
    gold = np.array([0, 1, 2, 2, 1, 0, 2, 1])
    pred = np.array([0, 2, 2, 2, 1, 1, 0, 1])
    scores = classification_metrics(pred, gold, num_labels=3)
    assert scores["accuracy"] == pytest.approx(5 / 8)
    assert scores["f1"] == pytest.approx(f1_score(gold, pred, average="macro"))
    assert scores["mcc"] == pytest.approx(matthews_corrcoef(gold, pred))


def test_binary_without_positives_scores_zero_f1_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = classification_metrics(np.zeros(4, int), np.zeros(4, int), num_labels=2)
    assert scores["accuracy"] == 1.0 and scores["f1"] == 0.0


def test_regression_metrics_match_hand_computed_and_scipy():
    pred, gold = np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0])
    scores = regression_metrics(pred, gold)
    assert scores["pearson"] == pytest.approx(0.5)
    assert scores["spearman"] == pytest.approx(0.5)
    assert scores["mse"] == pytest.approx(2 / 3)
    rng = np.random.default_rng(1)
    pred, gold = rng.normal(size=50), rng.uniform(0, 5, size=50)
    scores = regression_metrics(pred, gold)
    assert scores["pearson"] == pytest.approx(pearsonr(pred, gold)[0])
    assert scores["spearman"] == pytest.approx(spearmanr(pred, gold)[0])


def test_regression_with_constant_predictions_is_nan():
    scores = regression_metrics(np.ones(5), np.arange(5.0))
    assert math.isnan(scores["pearson"]) and scores["mse"] == pytest.approx(
        np.mean((1 - np.arange(5.0)) ** 2)
    )


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="3 predictions for 2 gold"):
        classification_metrics(np.zeros(3), np.zeros(2), 2)


def test_format_value():
    assert format_value("accuracy", 0.8123) == "81.2"
    assert format_value("dev_f1", 0.5) == "50.0"
    assert format_value("mse", 0.51234) == "0.512"
    assert format_value("loss", 2.3456) == "2.35"
    assert format_value("tokens", 123456) == "123,456"
    assert format_value("seconds", 1234.5) == "1,234"
    assert format_value("mcc", float("nan")) == "n/a"
    assert format_value("model", "a|b") == "a\\|b"
    assert format_value("accuracy", None) == ""


def test_markdown_table_aligns_text_left_and_numbers_right():
    rows = [
        {"model": "tfidf", "accuracy": 0.7328, "mse": 0.25},
        {"model": "bert-tiny", "accuracy": 0.8},
    ]
    expected = (
        "| model     | accuracy |   mse |\n"
        "| --------- | -------: | ----: |\n"
        "| tfidf     |     73.3 | 0.250 |\n"
        "| bert-tiny |     80.0 |       |\n"
    )
    assert markdown_table(rows, ["model", "accuracy", "mse"]) == expected
