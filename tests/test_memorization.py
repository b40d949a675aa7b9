"""Canaries and the memorization probe (Carlini et al., 2019): planting, exposure, bad input.

The exposure arithmetic is checked on fake scorers whose answers are known by hand (a small
space ranked exactly; a normal distribution whose tail probability scipy gives); planting is
checked by decoding the shards; and a tiny GPT trained in-process for 300 steps must expose
canaries seen 64 times far more than canaries seen once.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from plmkit.cli import main
from plmkit.config import PrepareConfig
from plmkit.config.privacy import MemorizationConfig
from plmkit.probes.memorization import exposure_table
from plmkit.probes.memorization import run as probe
from plmkit.runtime.errors import UserError
from plmkit.stages.prepare import run as prepare
from plmkit.text.canaries import Canary, fill, read_canaries
from plmkit.text.shards import ShardReader
from plmkit.text.tokenizer import load_tokenizer

DIGITS = re.compile(r"\d+")
GPT = ["objective.kind=clm", "model.hidden_size=64", "model.num_layers=2", "model.num_heads=2",
       "model.intermediate_size=128", "model.max_position=64", "model.layer_norm_eps=1e-5",
       "objective.seq_len=64", "train.batch_size=16", "train.lr=3e-3", "train.log_every=1000"]


def cli(*args: str) -> None:
    code = main(list(args))
    assert code == 0, f"plmkit {' '.join(args)} exited {code}"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """A wikitext corpus and its byte-level BPE tokenizer."""
    root = tmp_path_factory.mktemp("memorization")
    source = shared_data / "wikitext-103-eval" / "wiki.valid.tokens"
    with open(source, encoding="utf-8") as f:
        (root / "en.txt").write_text("".join(line for _, line in zip(range(400), f)))
    cli("tokenizer", f"inputs={root / 'en.txt'}", f"output={root / 'bpe'}", "kind=bpe",
        "vocab_size=500")
    return root


def _prepare(root: Path, name: str, *extra: str) -> Path:
    cli("prepare", f"inputs={root / 'en.txt'}", f"tokenizer={root / 'bpe'}",
        f"output={root / name}", "workers=1", "val_fraction=0.05", *extra)
    return root / name


@pytest.fixture(scope="module")
def gpt(root: Path) -> Path:
    """A tiny GPT pretrained on the corpus with 6 canaries, three seen once, three 64 times."""
    shards = _prepare(root, "shards", "canaries=6", "canary_repeats=[1,64]")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small gains nothing from two, and a busy box stalls them
    try:
        cli("pretrain", f"shards={shards}", f"output={root / 'gpt'}", "train.max_steps=300", *GPT)
    finally:
        torch.set_num_threads(threads)
    return root / "gpt"


def _documents(shards: Path, split: str) -> list[str]:
    reader, tok = ShardReader(shards, split), load_tokenizer(shards / "tokenizer")
    sentences = [tok.decode(reader.sentence(i).tolist()) for i in range(reader.num_sentences)]
    return [" ".join(sentences[i] for i in reader.doc_sentences(d)).strip()
            for d in range(reader.num_documents)]


def test_exact_rank_in_a_small_space_matches_the_definition() -> None:
    # 100 secrets; the fake model's log-perplexity of a text is the number in it, so secret
    # "07" has rank 8 (00 … 07) and exposure log2 100 − log2 8, "00" rank 1, "99" rank 100.
    template = "code {digits:2}"
    canaries = [Canary(fill(template, s), s, r) for s, r in (("07", 4), ("00", 1), ("99", 1))]
    calls: list[int] = []

    def scorer(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return np.array([float(DIGITS.search(t).group()) for t in texts])

    rows, method = exposure_table(canaries, template, scorer, candidates=1000)
    assert method["exact"] and calls == [3, 100]
    assert [r["rank"] for r in rows] == [8, 1, 100]
    expected = [math.log2(100) - 3, math.log2(100), 0.0]
    assert [r["exposure"] for r in rows] == pytest.approx(expected)
    assert [r["exposure_empirical"] for r in rows] == pytest.approx(expected)


def test_sampled_exposure_follows_the_tail_probability() -> None:
    # Candidates' log-perplexity ~ Normal(40, 3): a canary at the mean is chance (exposure 1),
    # one 4 σ below has exposure −log2 Φ(−4) ≈ 14.9 (scipy), past what 10,000 samples resolve;
    # the fitted tail is good to about a bit there (the skew is weakly pinned down by a sample).
    template = "my secret number is {digits:9}"
    planted = {"000000001": 40.0, "000000002": 28.0}
    canaries = [Canary(fill(template, s), s, 1) for s in planted]

    def scorer(texts: list[str]) -> np.ndarray:
        secrets = ["".join(DIGITS.findall(t)) for t in texts]
        noise = [np.random.default_rng(int(s)).normal(40.0, 3.0) for s in secrets]
        return np.array([planted.get(s, n) for s, n in zip(secrets, noise, strict=True)])

    rows, method = exposure_table(canaries, template, scorer, candidates=10000, seed=3)
    assert not method["exact"] and method["candidates"] == 10000
    assert rows[0]["exposure"] == pytest.approx(1.0, abs=0.1)
    assert rows[0]["exposure_empirical"] == pytest.approx(1.0, abs=0.1)
    tail = -stats.norm.logcdf(-4.0) / math.log(2)
    assert rows[1]["exposure"] == pytest.approx(tail, abs=1.5)
    assert rows[1]["exposure_empirical"] == pytest.approx(math.log2(10001))  # none likelier
    assert rows[1]["rank"] == pytest.approx(2.0 ** (method["space_bits"] - rows[1]["exposure"]))


def test_prepare_plants_each_canary_its_number_of_times(root: Path) -> None:
    shards = _prepare(root, "planted", "canaries=4", "canary_repeats=[1,3]", "canary_seed=5")
    template, canaries, record = read_canaries(shards)
    assert template == "my secret number is {digits:9}" and record["scrub_pii"] is False
    assert [c.repeats for c in canaries] == [1, 3, 1, 3]
    assert len({c.secret for c in canaries}) == 4
    plain = _prepare(root, "plain")
    assert not (plain / "canaries.json").exists()
    train, val = _documents(shards, "train"), _documents(shards, "val")
    for c in canaries:
        assert train.count(c.text) == c.repeats and c.text not in val
    assert sorted(d for d in train if "secret number" not in d) == sorted(_documents(plain, "train"))


def test_memorization_rises_with_repetition(gpt: Path, root: Path) -> None:
    output = root / "probe.md"
    rows, summary = probe(MemorizationConfig(model=str(gpt), shards=str(root / "shards"),
                                             candidates=2000, output=str(output)))
    by = {s["repeats"]: s for s in summary}
    assert set(by) == {1, 64} and by[1]["canaries"] == by[64]["canaries"] == 3
    assert by[64]["exposure"] > 8.0 and by[64]["exposure_empirical"] > 8.0
    assert by[64]["exposure"] > by[1]["exposure"] + 5.0
    assert by[1]["exposure_empirical"] < 5.0  # seen once in 300 steps: near chance
    assert "| repeats |" in output.read_text(encoding="utf-8")


def test_bad_canary_settings_write_nothing(root: Path) -> None:
    for change, field in (({"canary_format": "no slot here"}, "canary_format"),
                          ({"canary_format": "pin {digits:1}"}, "canary_format"),
                          ({"canary_repeats": [0]}, "canary_repeats"),
                          ({"canaries": -1}, "canaries")):
        cfg = PrepareConfig(inputs=[str(root / "en.txt")], tokenizer=str(root / "bpe"),
                            output=str(root / "refused"), workers=1, canaries=3)
        for key, value in change.items():
            setattr(cfg, key, value)
        with pytest.raises(UserError, match=field) as err:
            prepare(cfg)
        assert "\n" not in str(err.value)
        assert not (root / "refused").exists()


def test_probe_refuses_a_canary_longer_than_the_context(
    gpt: Path, root: Path, capsys: pytest.CaptureFixture
) -> None:
    long = "canary " + "many words " * 40 + "{digits:9}"
    shards = _prepare(root, "long", "canaries=2", f"canary_format={long}")
    output = root / "long.md"
    capsys.readouterr()
    code = main(["probe", "memorization", f"model={gpt}", f"shards={shards}", f"output={output}"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert "longer than the model's context of 63 tokens" in lines[0]
    assert not output.exists()
    with pytest.raises(UserError, match="canaries.json: missing"):
        probe(MemorizationConfig(model=str(gpt), shards=str(_prepare(root, "no-canaries"))))
