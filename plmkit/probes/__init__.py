"""Probes of a trained model: read it, measure one property (memorization, bias, robustness), write a table."""
