"""A TF-IDF + logistic regression baseline: the number a fine-tuned model has to beat.

`plmkit finetune` reports it beside the model's dev scores so a user sees at once whether
pretraining bought anything. Character 1–3-grams are the default because they need no
tokenizer and are strong on Chinese reviews (ChnSentiCorp) as well as English; word n-grams
are one argument away. The cost: no notion of word order beyond three characters, so it
trails a fine-tuned BERT by a wide margin on pair tasks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from plmkit.runtime.errors import UserError
from plmkit.tasks.classification.schema import LabelSet
from plmkit.tasks.metrics import classification_metrics
from plmkit.tasks.tables import Example

PAIR_SEPARATOR = " ||| "  # joins text and text_pair into one document


def tfidf_baseline(
    train: Sequence[Example],
    test: Sequence[Example],
    *,
    analyzer: str = "char",
    ngram_range: tuple[int, int] = (1, 3),
    C: float = 1.0,
    seed: int = 0,
) -> dict[str, float]:
    """Fit TF-IDF n-grams + logistic regression on `train`; accuracy, F1 and MCC on `test`."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    if not train or not test:
        raise UserError("the TF-IDF baseline needs labelled training and test examples")
    labels = LabelSet.from_examples(train)
    train_y = _label_ids(train, labels)
    test_y = _label_ids(test, labels)
    vectorizer = TfidfVectorizer(analyzer=analyzer, ngram_range=ngram_range, sublinear_tf=True)
    train_x = vectorizer.fit_transform([_document(ex) for ex in train])
    classifier = LogisticRegression(C=C, max_iter=1000, random_state=seed)
    classifier.fit(train_x, train_y)
    pred = classifier.predict(vectorizer.transform([_document(ex) for ex in test]))
    return classification_metrics(pred, test_y, len(labels))


def _document(ex: Example) -> str:
    return ex.text if ex.text_pair is None else ex.text + PAIR_SEPARATOR + ex.text_pair


def _label_ids(examples: Sequence[Example], labels: LabelSet) -> np.ndarray:
    for ex in examples:
        if ex.label is None:
            raise UserError(f"{ex.source}:{ex.line}: no label (the baseline needs every label)")
    return np.array([labels.index(ex.label, f"{ex.source}:{ex.line}") for ex in examples])
