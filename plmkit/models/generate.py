"""Text generation for every decoder: greedy, sampling and beam search over one small protocol.

`generate(decoding, cfg)` owns the search; a model takes part through a `Decoding`, which runs
the prompt (`start`), extends every row by one token (`step`) and reorders its rows (`select`,
for beam search). `CausalDecoding` is the GPT-2 one; an encoder-decoder's runs its encoder in
`start` and keeps the encoder output as per-row state. So the one search loop serves every
family, and each model keeps its own KV caches, masks and positions.

Key choices: beam search follows Transformers' definition (score = log-probability sum /
new tokens ** length_penalty, 2·beams candidates per step, its "early_stopping=False"
stopping rule), so the same model gives the same beams; a prompt runs once and is then
copied to the beams with `select`, instead of being run num_beams times. Sampling draws from a
`torch.Generator` seeded by the config, so a seed fixes the output. The cost of the protocol is
a Python call per token, which is noise next to a forward pass.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import torch
import torch.nn.functional as F

from plmkit.config import GenerationConfig, check_generation_config
from plmkit.models.decoder import CausalLM
from plmkit.models.seq2seq import Seq2SeqLM

_NEG = -1.0e9  # "never": the score Transformers gives beams that must not be chosen


class Decoding(Protocol):
    """A batch of sequences that `generate` extends token by token.

    Rows: `start` returns one row per prompt (B). Beam search then calls `select` with each row
    repeated num_beams times (B·k rows), and after each step with the rows whose beams
    continue. An implementation therefore keeps all per-row state (KV caches, attention mask,
    next position, encoder output and its mask) indexable by row, and reorders it in `select`.
    Logits are for the next token only; `generate` never asks for more.
    """

    eos_token_id: int | None  # the model's end-of-sequence id: the stop token by default
    room: int | None  # how many tokens may follow the longest prompt; None = no limit

    def start(self) -> torch.Tensor:
        """Run the prompts; logits (B, V) for each row's first new token."""
        ...

    def step(self, new_ids: torch.Tensor) -> torch.Tensor:
        """Append new_ids (N,), one token per row; logits (N, V) for the token after it."""
        ...

    def select(self, index: torch.Tensor) -> None:
        """Keep rows `index` (N',), in that order; a row may repeat (beams sharing a past)."""
        ...


class CausalDecoding:
    """`Decoding` for a `CausalLM` over a batch of prompts, left-padded (real tokens last)."""

    def __init__(
        self, model: CausalLM, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> None:
        B, T = input_ids.shape
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask.long()
        lengths = mask.sum(1) if T else torch.zeros(B, dtype=torch.long)
        if B == 0 or int(lengths.min()) == 0:
            row = 0 if B == 0 else int((lengths == 0).nonzero()[0])
            raise ValueError(f"prompt {row} is empty: give at least one token (e.g. the bos id)")
        if T > 1 and bool((mask[:, 1:] < mask[:, :-1]).any()):
            raise ValueError(
                "prompts must be left-padded (padding first): decoding appends on the right"
            )
        longest = int(lengths.max())
        if longest > model.max_position:
            raise ValueError(
                f"prompt of {longest} tokens is longer than the context window ({model.max_position})"
            )
        self.model = model
        self.eos_token_id = model.eos_token_id
        self.room = model.max_position - longest
        self.input_ids = input_ids
        self.mask = None if bool(mask.all()) else mask  # (N, S); None = no padding anywhere
        self.next_position = lengths  # (N,): where each row's next token sits
        self.caches = model.new_cache()

    def start(self) -> torch.Tensor:
        """Run the prompts through the model, filling the caches; logits (B, V)."""
        logits = self.model(self.input_ids, self.mask, caches=self.caches)  # (B, T, V)
        return logits[:, -1]  # left padding: the last column is every row's last token

    def step(self, new_ids: torch.Tensor) -> torch.Tensor:
        """One more token per row; logits (N, V)."""
        if self.mask is not None:
            self.mask = F.pad(self.mask, (0, 1), value=1)  # (N, S + 1)
        positions = self.next_position[:, None]  # (N, 1)
        self.next_position = self.next_position + 1
        return self.model(new_ids[:, None], self.mask, positions, self.caches)[:, -1]

    def select(self, index: torch.Tensor) -> None:
        """Reorder (or repeat) rows: caches, mask and positions alike."""
        for cache in self.caches:
            cache.self_attn.select(index)
        if self.mask is not None:
            self.mask = self.mask.index_select(0, index)
        self.next_position = self.next_position.index_select(0, index)


class Seq2SeqDecoding:
    """`Decoding` for a `Seq2SeqLM`: the encoder runs once, in `start`; each row keeps its encoder
    output, its mask and its decoder caches. Decoding starts from the pad id, as T5's does."""

    def __init__(
        self, model: Seq2SeqLM, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> None:
        lengths = input_ids.new_full(input_ids.shape[:1], input_ids.shape[1])
        if attention_mask is not None:
            lengths = attention_mask.long().sum(1)
        if input_ids.shape[0] == 0 or int(lengths.min()) == 0:
            row = 0 if input_ids.shape[0] == 0 else int((lengths == 0).nonzero()[0])
            raise ValueError(f"input {row} is empty: the encoder needs at least one token")
        self.model = model
        self.eos_token_id = model.eos_token_id
        self.room = None  # relative positions: no context window
        self.input_ids = input_ids
        self.memory_mask = attention_mask  # (N, S)
        self.memory: torch.Tensor | None = None  # (N, S, H), set by `start`
        self.caches = model.new_cache()

    def start(self) -> torch.Tensor:
        """Encode the inputs and decode the start token; logits (B, V)."""
        self.memory = self.model.encode(self.input_ids, self.memory_mask)
        first = torch.full_like(self.input_ids[:, :1], self.model.pad_token_id)  # (B, 1)
        return self.model.decode(first, self.memory, self.memory_mask, self.caches)[:, -1]

    def step(self, new_ids: torch.Tensor) -> torch.Tensor:
        """One more token per row; logits (N, V)."""
        logits = self.model.decode(new_ids[:, None], self.memory, self.memory_mask, self.caches)
        return logits[:, -1]

    def select(self, index: torch.Tensor) -> None:
        """Reorder (or repeat) rows: encoder output, its mask and both caches of every layer."""
        self.memory = self.memory.index_select(0, index)
        if self.memory_mask is not None:
            self.memory_mask = self.memory_mask.index_select(0, index)
        for cache in self.caches:
            cache.self_attn.select(index)
            cache.cross_attn.select(index)


class Generation(NamedTuple):
    """New tokens per prompt (not the prompt itself)."""

    tokens: torch.Tensor  # (B, N): each row's tokens, its stop token included, then pad_token_id
    lengths: torch.Tensor  # (B,): tokens generated per row, its stop token included
    scores: torch.Tensor | None  # (B,) beam search: the winner's score; None otherwise


@torch.inference_mode()
def generate(decoding: Decoding, cfg: GenerationConfig) -> Generation:
    """Extend every prompt of `decoding` by up to cfg.max_new_tokens tokens (greedy, sampled or
    beam search, per cfg); a row ends at eos or any of cfg.stop_ids."""
    check_generation_config(cfg)
    if decoding.room is not None and cfg.max_new_tokens > decoding.room:
        raise ValueError(
            f"generation.max_new_tokens {cfg.max_new_tokens} does not fit the context window: "
            f"the longest prompt leaves room for {decoding.room}"
        )
    eos = cfg.eos_token_id if cfg.eos_token_id is not None else decoding.eos_token_id
    stops = list(cfg.stop_ids) + ([eos] if eos is not None else [])
    pad = cfg.pad_token_id if cfg.pad_token_id is not None else (eos if eos is not None else 0)
    if cfg.num_beams > 1:
        return _beam_search(decoding, cfg, stops, pad)
    return _pick_tokens(decoding, cfg, stops, pad)


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """logits (N, V) with every token outside the top-k and the top-p nucleus set to -inf.

    top_k keeps tokens at least as likely as the k-th; top_p keeps the likeliest tokens up to
    and including the one whose cumulative probability reaches top_p (always at least one).
    """
    if top_k and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]  # (N, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)  # (N, V)
        probs = sorted_logits.softmax(-1)
        before = probs.cumsum(-1) - probs  # probability of the likelier tokens
        drop = (before >= top_p).scatter(-1, order, before >= top_p)  # back to vocabulary order
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def _pick_tokens(
    decoding: Decoding, cfg: GenerationConfig, stops: list[int], pad: int
) -> Generation:
    """Greedy or sampled decoding: one token per row per step until every row has stopped."""
    logits = decoding.start()  # (B, V)
    B, device = logits.shape[0], logits.device
    generator = torch.Generator(device).manual_seed(cfg.seed) if cfg.do_sample else None
    stop = torch.tensor(stops, dtype=torch.long, device=device)
    done = torch.zeros(B, dtype=torch.bool, device=device)
    lengths = torch.zeros(B, dtype=torch.long, device=device)
    out = []
    for t in range(cfg.max_new_tokens):
        if cfg.do_sample:
            scaled = logits.float() / cfg.temperature
            probs = filter_logits(scaled, cfg.top_k, cfg.top_p).softmax(-1)  # (B, V)
            token = torch.multinomial(probs, 1, generator=generator)[:, 0]  # (B,)
        else:
            token = logits.argmax(-1)  # (B,)
        token = token.masked_fill(done, pad)
        out.append(token)
        lengths += ~done
        done |= torch.isin(token, stop)
        if t + 1 == cfg.max_new_tokens or bool(done.all()):
            break
        logits = decoding.step(token)
    return Generation(torch.stack(out, 1), lengths, None)


def _beam_search(
    decoding: Decoding, cfg: GenerationConfig, stops: list[int], pad: int
) -> Generation:
    """Beam search as Transformers defines it (early_stopping=False, one sequence returned).

    Per prompt: `running` holds the k best unfinished beams, `best` the k best finished
    hypotheses with their length-normalised scores. Each step takes the top n_keep of the
    k·V continuations; those among the first k that end (a stop token, or the last step) join
    `best`, the k best that do not end run on. A prompt closes once no running beam can beat
    its worst finished one at the current length; the search ends when all have closed.
    """
    k, steps = cfg.num_beams, cfg.max_new_tokens
    logits = decoding.start()  # (B, V)
    (B, V), device = logits.shape, logits.device
    decoding.select(torch.arange(B, device=device).repeat_interleave(k))  # the prompt, k times
    log_probs = logits.float().log_softmax(-1).repeat_interleave(k, 0)  # (B·k, V)
    n_keep = max(2, 1 + len(stops)) * k  # enough that k beams go on even if some stop
    stop = torch.tensor(stops, dtype=torch.long, device=device)
    first_k = torch.arange(n_keep, device=device) < k  # (n_keep,): only these may finish
    running = torch.zeros(B, k, device=device)  # (B, k) log-probability sums
    running[:, 1:] = _NEG  # identical beams at first: expand only the first one
    seqs = torch.zeros(B, k, 0, dtype=torch.long, device=device)  # (B, k, t)
    best = torch.full((B, k), _NEG, device=device)
    best_seqs = torch.full((B, k, steps), pad, dtype=torch.long, device=device)
    best_len = torch.zeros(B, k, dtype=torch.long, device=device)
    finished = torch.zeros(B, k, dtype=torch.bool, device=device)  # slot holds a real hypothesis
    open_ = torch.ones(B, dtype=torch.bool, device=device)  # prompt may still improve
    for t in range(1, steps + 1):
        total = (log_probs.view(B, k, V) + running[..., None]).view(B, k * V)
        scores, index = total.topk(n_keep, dim=-1)  # (B, n_keep)
        parent, token = index // V, index % V
        grown = torch.cat(
            [seqs.gather(1, parent[..., None].expand(-1, -1, t - 1)), token[..., None]], -1
        )
        ends = torch.isin(token, stop) | (t == steps)  # (B, n_keep)
        # finished hypotheses: merge with the best so far, keep k
        final = ends & first_k & open_[:, None]  # (B, n_keep)
        normed = (scores / t**cfg.length_penalty).masked_fill(~final, _NEG)
        merged = torch.cat([best, normed], 1)  # (B, k + n_keep)
        keep = merged.topk(k, dim=-1).indices  # (B, k)
        padded = F.pad(grown, (0, steps - t), value=pad)  # (B, n_keep, steps)
        best = merged.gather(1, keep)
        best_seqs = torch.cat([best_seqs, padded], 1).gather(
            1, keep[..., None].expand(-1, -1, steps)
        )
        best_len = torch.cat([best_len, torch.full_like(token, t)], 1).gather(1, keep)
        finished = torch.cat([finished, final], 1).gather(1, keep)
        # running beams: the k best continuations that did not end
        alive = scores + ends.float() * _NEG
        go_on = alive.topk(k, dim=-1).indices  # (B, k)
        running, seqs = alive.gather(1, go_on), grown.gather(1, go_on[..., None].expand(-1, -1, t))
        # can a running beam still beat the worst finished hypothesis (at today's length)?
        worst = torch.where(finished, best.min(1, keepdim=True).values, _NEG)  # (B, k)
        open_ &= (running[:, :1] / t**cfg.length_penalty > worst).any(1)
        if t == steps or not bool(open_.any()) or bool(ends.all()):
            break
        rows = (torch.arange(B, device=device)[:, None] * k + parent.gather(1, go_on)).view(-1)
        decoding.select(rows)
        log_probs = decoding.step(seqs[:, :, -1].reshape(-1)).float().log_softmax(-1)  # (B·k, V)
    lengths = best_len[:, 0]
    return Generation(best_seqs[:, 0, : int(lengths.max())], lengths, best[:, 0])
