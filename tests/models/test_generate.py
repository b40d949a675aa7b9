"""generate.py: greedy and beam search equal Transformers' `generate` token for token; the KV
cache equals a full forward; sampling is seeded and draws only from the filtered tokens.

References: `GPT2LMHeadModel.generate` on the same weights; Transformers' TopK/TopP logits
warpers; a full (uncached) forward of our own model for the cache.
"""

from __future__ import annotations

import pytest
import torch

from plmkit.config import GenerationConfig
from plmkit.models.decoder import CausalLM
from plmkit.models.generate import CausalDecoding, Generation, filter_logits, generate
from plmkit.runtime.errors import UserError

from .tiny_gpt import VOCAB, hf_gpt2, left_padded, ours_from

LENGTHS = [7, 3, 11, 1]  # batched prompts of different lengths, left-padded
PAD = 1  # not 0: Transformers' beam search fills with eos when pad_token_id is 0 (falsy)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, CausalLM]:
    hf = hf_gpt2()
    return hf, ours_from(hf, tmp_path_factory.mktemp("gpt2"))


def _assert_same(ours: Generation, theirs: torch.Tensor, pad: int) -> None:
    """Our tokens equal Transformers' new tokens up to each row's end, then theirs are padding."""
    for row, n in enumerate(ours.lengths.tolist()):
        assert ours.tokens[row, :n].tolist() == theirs[row, :n].tolist(), f"row {row} differs"
        assert (theirs[row, n:] == pad).all(), f"row {row}: Transformers went on after {n} tokens"
    assert (
        ours.tokens.shape[1] == theirs.shape[1]
        or (ours.tokens == pad).all(0)[theirs.shape[1] :].all()
    )


def _frequent_token(model: CausalLM, ids: torch.Tensor, mask: torch.Tensor) -> int:
    """A token greedy decoding emits early in some row: as eos it makes searches stop early."""
    greedy = generate(
        CausalDecoding(model, ids, mask), GenerationConfig(max_new_tokens=8, eos_token_id=VOCAB)
    )
    return int(greedy.tokens[:, 2:].flatten().mode().values)


@torch.no_grad()
def test_greedy_equals_transformers(pair) -> None:
    hf, ours = pair
    ids, mask = left_padded(LENGTHS)
    theirs = hf.generate(
        input_ids=ids,
        attention_mask=mask,
        max_new_tokens=50,
        do_sample=False,
        eos_token_id=VOCAB + 1,
        pad_token_id=PAD,
    )[:, ids.shape[1] :]
    out = generate(
        CausalDecoding(ours, ids, mask), GenerationConfig(max_new_tokens=50, eos_token_id=VOCAB + 1)
    )
    assert out.lengths.tolist() == [50] * 4
    _assert_same(out, theirs, PAD)


@pytest.mark.parametrize("num_beams, length_penalty", [(1, 1.0), (3, 1.0), (3, 0.5), (4, 2.0)])
@torch.no_grad()
def test_stopping_searches_equal_transformers(pair, num_beams: int, length_penalty: float) -> None:
    hf, ours = pair
    ids, mask = left_padded(LENGTHS)
    eos = _frequent_token(ours, ids, mask)
    theirs = hf.generate(
        input_ids=ids,
        attention_mask=mask,
        max_new_tokens=30,
        do_sample=False,
        num_beams=num_beams,
        length_penalty=length_penalty,
        eos_token_id=eos,
        pad_token_id=PAD,
    )[:, ids.shape[1] :]
    cfg = GenerationConfig(
        max_new_tokens=30,
        num_beams=num_beams,
        length_penalty=length_penalty,
        eos_token_id=eos,
        pad_token_id=PAD,
    )
    out = generate(CausalDecoding(ours, ids, mask), cfg)
    if length_penalty <= 1:  # (2.0 favours long beams: finished ones are kept, but lose)
        assert (out.lengths < 30).any(), "no row stopped: the stop path went untested"
    _assert_same(out, theirs, PAD)


@torch.no_grad()
def test_beam_search_without_stops_equals_transformers(pair) -> None:
    hf, ours = pair
    ids, mask = left_padded(LENGTHS, seed=5)
    theirs = hf.generate(
        input_ids=ids,
        attention_mask=mask,
        max_new_tokens=20,
        num_beams=3,
        eos_token_id=VOCAB + 1,
        pad_token_id=PAD,
    )[:, ids.shape[1] :]
    out = generate(
        CausalDecoding(ours, ids, mask),
        GenerationConfig(max_new_tokens=20, num_beams=3, eos_token_id=VOCAB + 1),
    )
    _assert_same(out, theirs, PAD)


@torch.no_grad()
def test_stop_ids_end_rows_like_eos(pair) -> None:
    _, ours = pair
    ids, mask = left_padded(LENGTHS)
    stop = _frequent_token(ours, ids, mask)
    by_eos = generate(
        CausalDecoding(ours, ids, mask), GenerationConfig(max_new_tokens=30, eos_token_id=stop)
    )
    by_list = generate(
        CausalDecoding(ours, ids, mask),
        GenerationConfig(max_new_tokens=30, eos_token_id=VOCAB, stop_ids=[stop], pad_token_id=stop),
    )
    assert torch.equal(by_eos.tokens, by_list.tokens) and torch.equal(
        by_eos.lengths, by_list.lengths
    )
    assert (by_eos.lengths < 30).any()


@torch.no_grad()
def test_kv_cached_steps_equal_a_full_forward(pair) -> None:
    _, ours = pair
    ids, mask = left_padded(LENGTHS, seed=2)
    follow = torch.randint(3, VOCAB, (len(LENGTHS), 6), generator=torch.Generator().manual_seed(9))
    decoding = CausalDecoding(ours, ids, mask)
    cached = [decoding.start()] + [decoding.step(follow[:, t]) for t in range(5)]
    full_ids = torch.cat([ids, follow[:, :5]], 1)
    full = ours(full_ids, torch.cat([mask, torch.ones_like(follow[:, :5])], 1))  # (B, T + 5, V)
    worst = max((cached[t] - full[:, ids.shape[1] - 1 + t]).abs().max().item() for t in range(6))
    assert worst < 1e-5, f"cached vs full forward: max abs diff {worst:.2e}"


class _FixedLogits:
    """A Decoding whose next-token logits never change: sampling's distribution is known."""

    eos_token_id = None
    room = None

    def __init__(self, logits: torch.Tensor, rows: int) -> None:
        self.logits = logits.expand(rows, -1)

    def start(self) -> torch.Tensor:
        return self.logits

    def step(self, new_ids: torch.Tensor) -> torch.Tensor:
        return self.logits[: len(new_ids)]

    def select(self, index: torch.Tensor) -> None:
        self.logits = self.logits[index]


def test_sampling_is_seeded_and_follows_the_filtered_distribution() -> None:
    logits = torch.tensor([[3.0, 2.5, 2.0, 1.0, 0.0, -1.0]])
    cfg = GenerationConfig(
        max_new_tokens=1, do_sample=True, temperature=0.7, top_k=4, top_p=0.9, seed=7
    )
    tokens = generate(_FixedLogits(logits, 20000), cfg).tokens[:, 0]
    again = generate(_FixedLogits(logits, 20000), cfg).tokens[:, 0]
    other = generate(
        _FixedLogits(logits, 20000), GenerationConfig(**{**cfg.__dict__, "seed": 8})
    ).tokens[:, 0]
    assert torch.equal(tokens, again) and not torch.equal(tokens, other)
    expected = filter_logits(logits / 0.7, 4, 0.9).softmax(-1)[0]
    assert expected[3:].sum() == 0 and expected[2] > 0  # top-p removed token 3, top-k 4 and 5
    seen = torch.bincount(tokens, minlength=6) / len(tokens)
    worst = (seen - expected).abs().max().item()
    assert worst < 0.02, f"sampled frequencies {seen.tolist()} vs {expected.tolist()}"


@pytest.mark.parametrize(
    "top_k, top_p", [(5, 1.0), (1, 1.0), (0, 0.5), (0, 0.95), (20, 0.8), (0, 1e-6)]
)
def test_filters_keep_what_transformers_keeps(top_k: int, top_p: float) -> None:
    from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

    logits = torch.randn(8, 50, generator=torch.Generator().manual_seed(top_k))
    expected = logits.clone()
    if top_k:
        expected = TopKLogitsWarper(top_k)(None, expected)
    if top_p < 1:
        expected = TopPLogitsWarper(top_p)(None, expected)
    ours = filter_logits(logits, top_k, top_p)
    assert torch.equal(ours.isinf(), expected.isinf())
    assert (ours.isfinite().sum(-1) >= 1).all()


def test_bad_inputs_are_one_line_errors(pair) -> None:
    """Bad prompts are plain ValueErrors (the models layer knows no CLI); bad settings are the
    config's UserErrors. Either way one line."""
    _, ours = pair
    ids, mask = left_padded(LENGTHS)
    cases = [
        (
            lambda: CausalDecoding(ours, torch.zeros(1, 97, dtype=torch.long)),
            r"prompt of 97 tokens is longer than the context window \(96\)",
        ),
        (lambda: CausalDecoding(ours, torch.zeros(2, 0, dtype=torch.long)), "prompt 0 is empty"),
        (
            lambda: CausalDecoding(ours, ids, mask * torch.tensor([[1], [0], [1], [1]])),
            "prompt 1 is empty",
        ),
        (lambda: CausalDecoding(ours, ids, mask.flip(1)), "left-padded"),
        (
            lambda: generate(CausalDecoding(ours, ids, mask), GenerationConfig(max_new_tokens=90)),
            "max_new_tokens 90 does not fit .* room for 85",
        ),
    ]
    n_prompt_cases = len(cases)
    for config, message in [
        (GenerationConfig(top_p=0.0), r"generation.top_p: must be in \(0, 1\]"),
        (GenerationConfig(top_p=1.5), r"generation.top_p: must be in \(0, 1\]"),
        (GenerationConfig(num_beams=0), "generation.num_beams: must be ≥ 1"),
        (GenerationConfig(temperature=0.0), "generation.temperature: must be > 0"),
        (GenerationConfig(max_new_tokens=0), "generation.max_new_tokens"),
        (GenerationConfig(num_beams=2, do_sample=True), "generation.num_beams"),
        (GenerationConfig(stop_ids=[-3]), r"generation.stop_ids\[0\]"),
    ]:
        cases.append(
            (lambda config=config: generate(CausalDecoding(ours, ids, mask), config), message)
        )
    for number, (call, message) in enumerate(cases):
        kind = ValueError if number < n_prompt_cases else UserError
        with pytest.raises(kind, match=message) as err:
            call()
        assert "\n" not in str(err.value)
