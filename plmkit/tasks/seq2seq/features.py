"""Sequence-to-sequence tasks (translation, summarization): source/target rows → teacher-forced
batches → generated text → BLEU, chrF and ROUGE.

Where it sits: `stages/finetune.py` reads a TSV/CSV/JSONL table with `read_table` (the source
in `table.text_column`, the target in `table.label_column`), tokenizes once with `encode_pairs`,
and hands tasks/sampling.py `SampledBatches` over `collate_pairs`, and `seq2seq_loss`, to the
one trainer; `generate_texts` decodes a dev or test set with models/generate.py and
`generation_metrics` scores it. A model is any encoder-decoder called as
`model(input_ids, attention_mask, decoder_input_ids)` → logits, and decodable by
`Seq2SeqDecoding`.

Key choice: every sequence is tokenized without the tokenizer's own specials and ends with the
model's eos, whatever the tokenizer's post-processor does, so a T5 Unigram tokenizer and any
other give the same layout. Scores come from sacreBLEU and rouge-score (the field's reference
implementations), on detokenized text; the cost is that ROUGE's English stemmer and tokenizer
make it meaningful for English summaries only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch import nn

from plmkit.config import GenerationConfig
from plmkit.models.generate import Seq2SeqDecoding, generate
from plmkit.runtime.errors import UserError
from plmkit.tasks.tables import Example

IGNORE = -100  # label of a padded target position: no loss


@dataclass
class PairSet:
    """Tokenized (source, target) rows, unpadded; each sequence ends with eos."""

    sources: list[np.ndarray]
    targets: list[np.ndarray]
    pad_id: int
    examples: Sequence[Example]

    def __len__(self) -> int:
        return len(self.sources)


def encode_pairs(
    tokenizer: Tokenizer,
    examples: Sequence[Example],
    *,
    max_source_length: int,
    max_target_length: int,
    eos_id: int,
    pad_id: int,
) -> PairSet:
    """Token ids of every source and target, truncated to the maximum lengths (eos kept)."""
    for name, value in (("max_source_length", max_source_length), ("max_target_length", max_target_length)):
        if value < 2:
            raise UserError(f"finetune: {name} must be at least 2 (text and eos), got {value}")
    sources = _encode(tokenizer, [ex.text for ex in examples], max_source_length, eos_id)
    targets = _encode(tokenizer, [str(ex.label or "") for ex in examples], max_target_length, eos_id)
    return PairSet(sources, targets, pad_id, examples)


def _encode(tokenizer: Tokenizer, texts: list[str], max_length: int, eos_id: int) -> list[np.ndarray]:
    encodings = tokenizer.encode_batch(texts, add_special_tokens=False)
    return [np.asarray([*enc.ids[: max_length - 1], eos_id], dtype=np.int64) for enc in encodings]


def _pad(rows: list[np.ndarray], value: int) -> np.ndarray:
    out = np.full((len(rows), max(len(r) for r in rows)), value, dtype=np.int64)  # (B, T)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def collate_pairs(pairs: PairSet, indices: Sequence[int]) -> dict[str, torch.Tensor]:
    """Padded inputs, decoder inputs (targets shifted right after the pad id, T5's start token)
    and labels (IGNORE on padding) for rows `indices`."""
    sources = _pad([pairs.sources[i] for i in indices], pairs.pad_id)  # (B, S)
    labels = _pad([pairs.targets[i] for i in indices], IGNORE)  # (B, T)
    decoder_inputs = np.concatenate(
        [np.full((len(indices), 1), pairs.pad_id), np.where(labels == IGNORE, pairs.pad_id, labels)[:, :-1]],
        axis=1,
    )  # (B, T)
    return {
        "input_ids": torch.from_numpy(sources),
        "attention_mask": torch.from_numpy((sources != pairs.pad_id).astype(np.int64)),
        "decoder_input_ids": torch.from_numpy(decoder_inputs),
        "labels": torch.from_numpy(labels),
    }


def seq2seq_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    """Teacher-forced cross-entropy over the real target tokens, with token accuracy."""
    logits = model(batch["input_ids"], batch["attention_mask"], batch["decoder_input_ids"])  # (B, T, V)
    labels = batch["labels"]
    loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE)
    real = labels != IGNORE
    acc = (logits.argmax(-1)[real] == labels[real]).float().mean().item() if real.any() else 0.0
    return loss, {"acc": acc}


@torch.inference_mode()
def generate_texts(
    model: nn.Module,
    tokenizer: Tokenizer,
    pairs: PairSet,
    cfg: GenerationConfig,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
) -> list[str]:
    """Generated target text for every source of `pairs`, in input order."""
    device = torch.device(device)
    lengths = np.fromiter((len(s) for s in pairs.sources), dtype=np.int64, count=len(pairs))
    order = np.argsort(-lengths, kind="stable")  # longest first: little padding
    texts: list[str] = [""] * len(pairs)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            batch = collate_pairs(pairs, rows)
            decoding = Seq2SeqDecoding(
                model, batch["input_ids"].to(device), batch["attention_mask"].to(device)
            )
            out = generate(decoding, cfg)
            for row, tokens, n in zip(rows, out.tokens.tolist(), out.lengths.tolist(), strict=True):
                texts[row] = tokenizer.decode(tokens[:n], skip_special_tokens=True).strip()
    finally:
        model.train(was_training)
    return texts


def generation_metrics(hypotheses: Sequence[str], references: Sequence[str], rouge: bool = False) -> dict[str, float]:
    """Corpus BLEU and chrF (sacreBLEU, default 13a tokenization); ROUGE-1/2/L F1 (rouge-score,
    stemmed) when `rouge`. BLEU and chrF are on sacreBLEU's 0-100 scale, ROUGE on 0-1."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    if not references:
        raise ValueError("no examples to score")
    import sacrebleu

    scores = {
        "bleu": float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score),
        "chrf": float(sacrebleu.corpus_chrf(list(hypotheses), [list(references)]).score),
    }
    if rouge:
        from rouge_score import rouge_scorer

        scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
        totals = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
        for hyp, ref in zip(hypotheses, references, strict=True):
            for name, score in scorer.score(ref, hyp).items():
                totals[name] += score.fmeasure
        scores.update({name: total / len(references) for name, total in totals.items()})
    return scores
