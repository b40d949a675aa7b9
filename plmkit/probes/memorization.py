"""The memorization probe: how much more likely a model finds each planted canary than chance.

`plmkit prepare canaries=K` planted K random secrets, each a chosen number of times
(text/canaries.py, recorded in canaries.json). Here we score every canary's log-perplexity
under the model, −log2 P(canary text | eos), the eos standing for the end of the document
before it, as in pretraining's packed stream, and compare it with the log-perplexity of
random secrets of the same template. Carlini et al. (2019, "The Secret Sharer") define
exposure = log2 |R| − log2 rank, rank being the canary's place (1 = likeliest) among all
|R| secrets; a secret the model never saw has rank ≈ |R|/2, so exposure ≈ 1 is chance.

Key choice: a space of 10^9 secrets cannot be enumerated, so, as the paper does, we score N
random candidates (shared by all canaries of the template) and read the rank off a
skew-normal fit of their log-perplexities: exposure ≈ −log2 F(canary), F the fitted CDF,
capped at log2 |R|. The fit extrapolates past the sample, which is its cost; we also report
the empirical exposure −log2((1 + #candidates likelier) / (N + 1)), which cannot exceed
log2(N + 1) but assumes nothing. A space no larger than N is enumerated and ranked exactly.
Only causal LMs (GPT) are probed; an MLM's pseudo-likelihood is not done yet.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats

from plmkit.checkpoint import resolve_model_dir
from plmkit.config import read_yaml
from plmkit.config.privacy import MemorizationConfig
from plmkit.runtime.errors import UserError
from plmkit.runtime.files import atomic_write_text
from plmkit.tasks.contract import TaskModel
from plmkit.tasks.lm.task import LM
from plmkit.tasks.metrics import markdown_table
from plmkit.tasks.registry import load_task_model
from plmkit.text.canaries import (
    Canary,
    all_secrets,
    fill,
    random_secrets,
    read_canaries,
    slot_lengths,
)
from plmkit.text.corpus import split_sentences
from plmkit.text.encode import SentenceEncoder
from plmkit.text.shards import check_tokenizer
from plmkit.text.tokenizer import token_roles

Scorer = Callable[[list[str]], np.ndarray]  # texts → log-perplexity in bits, one per text
COLUMNS = ["canary", "repeats", "log_ppl_bits", "rank", "exposure", "exposure_empirical"]


def exposure_table(
    canaries: list[Canary], template: str, scorer: Scorer, *, candidates: int, seed: int = 0
) -> tuple[list[dict], dict]:
    """One row per canary (its log-perplexity, estimated rank, exposure), and how it was ranked."""
    width = sum(slot_lengths(template))
    bits = width * math.log2(10)
    space = 10**width
    own = scorer([c.text for c in canaries])
    exact = space <= candidates
    if exact:  # every secret of R, the canaries' own included (none is likelier than itself)
        secrets = list(all_secrets(template))
    else:
        rng = np.random.Generator(np.random.PCG64([seed, 2]))  # apart from the canaries' own draws
        secrets = random_secrets(template, candidates, rng)
    others = scorer([fill(template, s) for s in secrets])
    fit = None if exact else stats.skewnorm(*stats.skewnorm.fit(others))
    rows = []
    for i, (canary, x) in enumerate(zip(canaries, own, strict=True)):
        likelier = int((others < x).sum())
        if exact:
            rank = 1.0 + likelier
            empirical = exposure = bits - math.log2(rank)
        else:
            empirical = -math.log2((1 + likelier) / (len(others) + 1))
            exposure = min(bits, -float(fit.logcdf(x)) / math.log(2))
            rank = 2.0 ** (bits - exposure)
        rows.append({"canary": i, "repeats": canary.repeats, "log_ppl_bits": float(x),
                     "rank": rank, "exposure": exposure, "exposure_empirical": empirical})
    method = {"space_bits": bits, "candidates": len(others), "exact": exact,
              "empirical_cap": bits if exact else math.log2(len(others) + 1)}
    return rows, method


def by_repeats(rows: list[dict]) -> list[dict]:
    """Mean exposure (fitted and empirical) and log-perplexity per repetition count."""
    out = []
    for repeats in sorted({r["repeats"] for r in rows}):
        group = [r for r in rows if r["repeats"] == repeats]
        out.append({"repeats": repeats, "canaries": len(group),
                    **{k: float(np.mean([r[k] for r in group]))
                       for k in ("log_ppl_bits", "exposure", "exposure_empirical")}})
    return out


def causal_lm_scorer(task_model: TaskModel, *, context: int, batch_size: int) -> Scorer:
    """−log2 P(text | eos) under a causal LM, texts tokenized as `plmkit prepare` does."""
    encoder = SentenceEncoder(task_model.tokenizer)
    eos = token_roles(task_model.tokenizer).eos
    model, device = task_model.model, task_model.device

    def score(texts: list[str]) -> np.ndarray:
        rows = [np.concatenate([[eos], encoder(split_sentences(t))[0]]) for t in texts]
        longest = int(np.argmax([len(r) for r in rows]))
        if len(rows[longest]) > context:
            raise UserError(f"canary '{texts[longest]}': {len(rows[longest]) - 1} tokens, longer "
                            f"than the model's context of {context - 1} tokens after eos")
        out = np.empty(len(rows))
        for start in range(0, len(rows), batch_size):
            out[start : start + batch_size] = _batch_bits(model, rows[start : start + batch_size],
                                                          eos, device)
        return out

    return score


@torch.inference_mode()
def _batch_bits(model: torch.nn.Module, rows: list[np.ndarray], pad: int,
                device: torch.device) -> np.ndarray:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.from_numpy(row.astype(np.int64))
    ids = ids.to(device)
    logits = model(ids[:, :-1]).float()  # (B, T-1, V); right padding leaves real tokens alone
    nll = F.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")  # (B, T-1)
    lengths = torch.tensor([len(r) - 1 for r in rows], device=device)
    real = torch.arange(width - 1, device=device)[None] < lengths[:, None]  # (B, T-1)
    return ((nll * real).sum(1) / math.log(2)).cpu().numpy()


def _context(task_model: TaskModel, model_arg: str) -> int:
    """Tokens one scored sequence may hold: max_position, and the training window if recorded."""
    limit = int(task_model.model.max_position)
    run_config = Path(model_arg) / "config.yaml"
    if run_config.is_file() and resolve_model_dir(model_arg) != Path(model_arg):
        seq_len = ((read_yaml(str(run_config)) or {}).get("objective") or {}).get("seq_len")
        if isinstance(seq_len, int) and seq_len > 0:
            limit = min(limit, seq_len + 1)  # a window is seq_len + 1 tokens
    return limit


def run(cfg: MemorizationConfig) -> tuple[list[dict], list[dict]]:
    """Exposure of every canary planted in cfg.shards under cfg.model; prints the tables."""
    if not cfg.model:
        raise UserError("probe memorization: no model given (model=RUN_DIR)")
    if cfg.candidates < 100:
        raise UserError(f"config candidates: {cfg.candidates} is too few to rank against (≥ 100)")
    if cfg.batch_size < 1:
        raise UserError(f"config batch_size: must be ≥ 1, got {cfg.batch_size}")
    template, canaries, record = read_canaries(cfg.shards)
    task_model = load_task_model(cfg.model, cfg.device, family=LM)
    check_tokenizer(cfg.shards, task_model.path)
    scorer = causal_lm_scorer(task_model, context=_context(task_model, cfg.model),
                              batch_size=cfg.batch_size)
    rows, method = exposure_table(canaries, template, scorer, candidates=cfg.candidates,
                                  seed=cfg.seed)
    summary = by_repeats(rows)
    text = _report(cfg, template, record, rows, summary, method)
    print(text, end="")
    if cfg.output:
        atomic_write_text(cfg.output, text)
    return rows, summary


def _report(cfg: MemorizationConfig, template: str, record: dict, rows: list[dict],
            summary: list[dict], method: dict) -> str:
    how = (f"all {method['candidates']:,} secrets (exact rank)" if method["exact"] else
           f"{method['candidates']:,} random candidates, skew-normal fit; empirical exposure "
           f"capped at log2(N+1) = {method['empirical_cap']:.1f}")
    head = (f"memorization: {cfg.model} on {len(rows)} canaries of '{template}' "
            f"(log2 |R| = {method['space_bits']:.1f}, scrub_pii={record.get('scrub_pii', False)}); "
            f"ranked against {how}; chance ≈ 1\n\n")
    return (head + markdown_table(rows, COLUMNS) + "\n"
            + markdown_table(summary, ["repeats", "canaries", "log_ppl_bits", "exposure",
                                       "exposure_empirical"]))
