"""How much a language model likes a sentence: pseudo-log-likelihood (MLM) or log-likelihood (GPT).

For a masked LM we follow Nangia et al. (2020): the two sentences of a pair are aligned token by
token (difflib's SequenceMatcher over token ids, without its junk heuristic), and each sentence
scores the sum, over the tokens it shares with the other, of log P(token | the sentence with
that one token masked). Scoring only shared tokens keeps the group words themselves (rarer in
one group than the other) out of the score. A causal LM scores the whole sentence, log P(text
| eos), with the memorization probe's scorer (tokenized as `plmkit prepare` does). MLMs:
BERT (`plmkit pretrain` runs, BertForMaskedLM/BertForPreTraining) and ELECTRA generators.

Key choice: every masked copy of every sentence is one row of one flat work list, batched
longest-first and scored with the MLM head on the masked position alone (`mlm_positions`);
the cost is one forward pass per shared token, ~20× a sentence's plain forward pass.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from plmkit.checkpoint import file_family, load_into, read_checkpoint, resolve_model_dir
from plmkit.checkpoint.electra import ELECTRA
from plmkit.models.electra import Generator
from plmkit.models.encoder import PretrainingModel
from plmkit.probes.memorization import causal_lm_scorer
from plmkit.runtime.console import progress_interval
from plmkit.runtime.devices import pick_device
from plmkit.runtime.errors import UserError
from plmkit.tasks.arrays import longest_first
from plmkit.tasks.lm.task import LM
from plmkit.tasks.registry import load_task_model
from plmkit.tasks.sampling import pad_inputs
from plmkit.text.corpus import split_sentences
from plmkit.text.encode import SentenceEncoder
from plmkit.text.tokenizer import SpecialIds, load_tokenizer, special_ids

Ids = list[int]


@dataclass
class PairScorer:
    """A loaded model that tokenizes sentences and scores sentence pairs, (n, 2) in nats."""

    method: str  # how a sentence is scored, for the table's header
    tokenize: Callable[[str], Ids]  # as the score sees the sentence (no special tokens)
    score: Callable[[list[tuple[str, str]]], np.ndarray]
    max_tokens: int  # tokens one sentence may hold


def shared_positions(a: Ids, b: Ids) -> tuple[list[int], list[int]]:
    """Indices into `a` and into `b` of the tokens the two sequences share, aligned by difflib."""
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    in_a, in_b = [], []
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        if op == "equal":
            in_a += range(a0, a1)
            in_b += range(b0, b1)
    return in_a, in_b


def load_pair_scorer(path: str, device: str = "auto", batch_size: int = 128) -> PairScorer:
    """The scorer for the model in `path`: PLL for a BERT-family MLM, log-likelihood for a GPT."""
    model_dir = resolve_model_dir(path)
    checkpoint = read_checkpoint(model_dir)
    if checkpoint.cfg.family == "gpt":
        return _causal_scorer(str(model_dir), device, batch_size)
    architecture = (checkpoint.hf_config.get("architectures") or ["none"])[0]
    if checkpoint.cfg.family != "bert" or "mlm.dense.weight" not in checkpoint.weights:
        hint = f" (an ELECTRA run's is {model_dir}/generator)" if (
            model_dir / "generator" / "config.json").is_file() else ""
        raise UserError(f"{model_dir}: holds no masked-LM head ({architecture}); the bias probe "
                        "needs a pretrained MLM (a `plmkit pretrain` run, BertForMaskedLM, "
                        f"BertForPreTraining, ElectraForMaskedLM){hint} or a GPT-style causal LM")
    generator = file_family(checkpoint.hf_config) is ELECTRA
    model: nn.Module = Generator(checkpoint.cfg) if generator else PretrainingModel(checkpoint.cfg)
    left = [n for n in load_into(model, checkpoint)  # the pooler and NSP head are not used
            if n.startswith(("mlm.", "encoder.")) and not n.startswith("encoder.pooler.")]
    if left:
        raise UserError(f"{model_dir}: no weights for {', '.join(left[:3])} of its MLM")
    torch_device = pick_device(device)
    model = model.to(torch_device).eval()
    tokenizer = load_tokenizer(model_dir)
    ids = special_ids(tokenizer)
    max_tokens = checkpoint.cfg.max_position - 2

    def tokenize(text: str) -> Ids:
        return tokenizer.encode(text, add_special_tokens=False).ids

    def score(pairs: list[tuple[str, str]]) -> np.ndarray:
        tokenized = [(tokenize(a), tokenize(b)) for a, b in pairs]
        return pll_pairs(model, tokenized, ids, batch_size, torch_device)

    return PairScorer("pseudo-log-likelihood of the shared tokens (Nangia et al., 2020)",
                      tokenize, score, max_tokens)


def _causal_scorer(path: str, device: str, batch_size: int) -> PairScorer:
    task_model = load_task_model(path, device, family=LM)
    context = int(task_model.model.max_position)
    bits = causal_lm_scorer(task_model, context=context, batch_size=batch_size)
    encoder = SentenceEncoder(task_model.tokenizer)

    def tokenize(text: str) -> Ids:
        return encoder(split_sentences(text))[0].tolist()

    def score(pairs: list[tuple[str, str]]) -> np.ndarray:
        texts = [text for pair in pairs for text in pair]
        return -bits(texts).reshape(-1, 2) * math.log(2)  # −log2 P → ln P

    return PairScorer("log-likelihood of the whole sentence, log P(text | eos)", tokenize, score,
                      context - 1)


def pll_pairs(model: nn.Module, pairs: list[tuple[Ids, Ids]], ids: SpecialIds,
              batch_size: int, device: torch.device) -> np.ndarray:
    """(n, 2): each sentence's pseudo-log-likelihood over the tokens it shares with its pair."""
    sequences, positions = [], []
    for a, b in pairs:
        in_a, in_b = shared_positions(a, b)
        for tokens, shared in ((a, in_a), (b, in_b)):
            sequences.append(np.asarray([ids.cls, *tokens, ids.sep], dtype=np.int64))
            positions.append(np.asarray(shared, dtype=np.int64) + 1)  # after [CLS]
    return pseudo_log_likelihoods(model, sequences, positions, ids, batch_size, device).reshape(-1, 2)


@torch.inference_mode()
def pseudo_log_likelihoods(model: nn.Module, sequences: list[np.ndarray],
                           positions: list[np.ndarray], ids: SpecialIds, batch_size: int,
                           device: torch.device) -> np.ndarray:
    """Per sequence, the sum over its `positions` p of log P(token p | sequence with p masked)."""
    work = [(s, int(p)) for s, where in enumerate(positions) for p in where]  # one masked copy each
    lengths = [len(sequences[s]) for s, _ in work]
    totals = np.zeros(len(sequences))
    batches = list(longest_first(lengths, batch_size)) if work else []
    bar = tqdm(batches, desc="pseudo-log-likelihood", unit=" batches", delay=2.0, leave=False,
               mininterval=progress_interval())
    for batch in bar:
        rows, targets, flat = [], [], []
        width = max(lengths[i] for i in batch)
        for j, i in enumerate(batch):
            s, p = work[i]
            row = sequences[s].copy()
            targets.append(row[p])
            row[p] = ids.mask
            rows.append(row)
            flat.append(j * width + p)  # the masked position in the flattened (B, T) batch
        inputs = pad_inputs(rows, ids.pad)
        out = model(inputs["input_ids"].to(device), inputs["attention_mask"].to(device),
                    inputs["token_type_ids"].to(device),
                    mlm_positions=torch.tensor(flat, device=device))
        logits = out.mlm_logits if hasattr(out, "mlm_logits") else out  # (N, V)
        logp = F.log_softmax(logits.float(), dim=-1)  # (N, V)
        picked = logp[torch.arange(len(batch), device=device), torch.tensor(targets, device=device)]
        np.add.at(totals, [work[i][0] for i in batch], picked.double().cpu().numpy())
    return totals
