"""Sentence and sentence-pair classification and regression: features, scores, the TF-IDF baseline, and the task entry."""
