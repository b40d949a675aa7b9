"""Causal language models: perplexity on raw text (a model read, not a fine-tuning task)."""
