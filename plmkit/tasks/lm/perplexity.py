"""Perplexity of a causal language model on raw text, tokenized exactly as pretraining saw it.

Where it sits: `plmkit evaluate model=GPT file=TEXT` lands here. The text goes through the same
corpus reader, sentence splitter and tokenizer as `plmkit prepare`, documents joined by eos as
the causal-LM batches join them, so the score measures the model on the distribution it was
trained for. Windows of the model's context slide with a stride: every token is scored once,
each with at least `context - stride` tokens before it (after the first window).

Key choice: besides per-token perplexity (which depends on the tokenizer) we report per-word
perplexity, exp(total negative log-likelihood / whitespace-separated words), the figure that
compares across tokenizations; the cost is that "word" is only meaningful for spaced scripts.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch import nn

from plmkit.config import CorpusConfig
from plmkit.text.corpus import iter_documents, split_sentences
from plmkit.text.encode import SentenceEncoder


def text_stream(inputs: list[str], corpus: CorpusConfig, tokenizer: Tokenizer,
                eos_id: int) -> tuple[np.ndarray, int]:
    """(token ids of every document, each followed by eos; number of whitespace words)."""
    encoder = SentenceEncoder(tokenizer)
    parts, words = [], 0
    for doc in iter_documents(inputs, corpus):
        ids, _ = encoder(split_sentences(doc.text))
        parts.extend([ids, np.asarray([eos_id])])
        words += len(doc.text.split())
    return np.concatenate(parts).astype(np.int64), words


@torch.inference_mode()
def perplexity(model: nn.Module, stream: np.ndarray, words: int, *, context: int, stride: int,
               batch_size: int = 8, device: str | torch.device = "cpu") -> dict[str, float]:
    """Token- and word-level perplexity of `model` (logits = model(input_ids)) over `stream`."""
    if not 0 < stride <= context:
        raise ValueError(f"stride {stride} must be in (0, context={context}]")
    device = torch.device(device)
    tokens = torch.from_numpy(stream)
    # window w covers [start, start + context); it scores the tokens after the previous window's end
    starts = list(range(0, max(len(tokens) - 1, 1), stride))
    total_nll, scored, prev_end = 0.0, 0, 0
    was_training = model.training
    model.eval()
    try:
        for first in range(0, len(starts), batch_size):
            rows, keep = [], []
            for start in starts[first : first + batch_size]:
                end = min(start + context + 1, len(tokens))  # +1: the last input's target
                rows.append(tokens[start:end])
                keep.append(end - 1 - max(prev_end, start))  # new targets in this window
                prev_end = end - 1
            width = max(len(r) for r in rows)
            batch = torch.zeros(len(rows), width, dtype=torch.long)
            for i, row in enumerate(rows):
                batch[i, : len(row)] = row
            batch = batch.to(device)
            logits = model(batch[:, :-1])  # (B, T, V)
            nll = F.cross_entropy(logits.transpose(1, 2).float(), batch[:, 1:], reduction="none")
            for i, (row, n) in enumerate(zip(rows, keep, strict=True)):
                if n > 0:
                    total_nll += nll[i, len(row) - 1 - n : len(row) - 1].sum().item()
                    scored += n
    finally:
        model.train(was_training)
    return {"tokens": float(scored), "words": float(words), "loss": total_nll / max(scored, 1),
            "ppl": math.exp(total_nll / max(scored, 1)),
            "word_ppl": math.exp(total_nll / max(words, 1))}
