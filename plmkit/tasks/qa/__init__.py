"""Extractive question answering: SQuAD/CMRC files, windows and spans, answers, EM/F1, the task entry."""
