"""The GPT and T5 families end to end through the CLI, on real English text from ../shared/data.

GPT: tokenizer (byte-BPE) → prepare → pretrain (causal LM) → generate, and the exported
`GPT2LMHeadModel` gives Transformers the same logits. T5: tokenizer (Unigram) → prepare →
pretrain (span corruption) → finetune (seq2seq on Multi30k pairs) → evaluate → generate, and
the fine-tuned `T5ForConditionalGeneration` gives Transformers the same logits. Tiny models
and step counts: these check the wiring and the files, not model quality.
"""

from __future__ import annotations

import json
import lzma
import re
from pathlib import Path

import pytest
import torch

from plmkit.checkpoint import load_into, read_checkpoint
from plmkit.cli import main
from plmkit.models.decoder import CausalLM
from plmkit.models.seq2seq import Seq2SeqLM
from plmkit.text.tokenizer import load_tokenizer

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
WIKITEXT = DATA / "wikitext-103-eval"
MULTI30K = DATA / "multi30k"
TINY = ["model.hidden_size=32", "model.num_layers=2", "model.num_heads=2",
        "model.intermediate_size=64", "model.max_position=64", "model.layer_norm_eps=1e-5"]



@pytest.fixture(autouse=True)
def _data_present(shared_data: Path) -> None:
    """Missing ../shared/data fails these tests (conftest's shared_data), never skips them."""


def cli(*args: str) -> None:
    code = main(list(args))
    assert code == 0, f"plmkit {' '.join(args)} exited {code}"


def _english_corpus(path: Path, lines: int = 3000) -> Path:
    """Wikitext-103 valid lines (blank lines separate documents), as a plain text file."""
    source = next(WIKITEXT.glob("*valid*"))
    opener = lzma.open if source.suffix == ".xz" else open
    with opener(source, "rt", encoding="utf-8") as f:
        text = "".join(line for _, line in zip(range(lines), f))
    path.write_text(text, encoding="utf-8")
    return path


def _pairs(path: Path, split: str, rows: int) -> Path:
    en = (MULTI30K / f"{split}.en").read_text(encoding="utf-8").splitlines()[:rows]
    de = (MULTI30K / f"{split}.de").read_text(encoding="utf-8").splitlines()[:rows]
    path.write_text("source\ttarget\n" + "".join(f"{a}\t{b}\n" for a, b in zip(en, de)),
                    encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("generation")


@pytest.fixture(scope="module")
def gpt(root: Path) -> Path:
    corpus = _english_corpus(root / "en.txt")
    cli("tokenizer", f"inputs={corpus}", f"output={root / 'bpe'}", "kind=bpe", "vocab_size=1000")
    cli("prepare", f"inputs={corpus}", f"tokenizer={root / 'bpe'}", f"output={root / 'bpe-shards'}",
        "val_fraction=0.05", "workers=1")
    cli("pretrain", f"shards={root / 'bpe-shards'}", f"output={root / 'gpt'}", "objective.kind=clm",
        *TINY, "objective.seq_len=64", "train.max_steps=30", "train.batch_size=8", "train.lr=3e-3")
    return root / "gpt"


@pytest.fixture(scope="module")
def t5(root: Path) -> dict[str, Path]:
    corpus = root / "mixed.txt"
    en = (MULTI30K / "train.en").read_text(encoding="utf-8").splitlines()[:3000]
    de = (MULTI30K / "train.de").read_text(encoding="utf-8").splitlines()[:3000]
    corpus.write_text("\n".join(en + de) + "\n", encoding="utf-8")
    cli("tokenizer", f"inputs={corpus}", f"output={root / 'uni'}", "kind=unigram",
        "vocab_size=1200", "corpus.doc_split=line")
    cli("prepare", f"inputs={corpus}", f"tokenizer={root / 'uni'}", f"output={root / 'uni-shards'}",
        "val_fraction=0.05", "workers=1", "corpus.doc_split=line")
    t5_model = [*TINY[:-1], "model.layer_norm_eps=1e-6", "model.num_heads=4", "model.head_dim=8"]
    cli("pretrain", f"shards={root / 'uni-shards'}", f"output={root / 't5'}", "objective.kind=span",
        *t5_model, "objective.seq_len=48", "train.max_steps=20", "train.batch_size=8")
    train, dev = _pairs(root / "train.tsv", "train", 200), _pairs(root / "dev.tsv", "val", 20)
    cli("finetune", "task=seq2seq", f"init={root / 't5'}", f"train_file={train}",
        f"dev_file={dev}", f"output={root / 'mt'}", "table.text_column=source",
        "table.label_column=target", "max_length=48", "max_target_length=48",
        "train.max_steps=20", "train.batch_size=8", "generation.max_new_tokens=12")
    return {"pre": root / "t5", "mt": root / "mt", "dev": dev}


def test_causal_lm_pretraining_lowers_loss(gpt: Path) -> None:
    summary = json.loads((gpt / "summary.json").read_text())
    assert summary["objective"] == "clm"
    assert summary["end"]["val_lm_loss"] < summary["start"]["val_lm_loss"] - 0.5, summary


@torch.no_grad()
def test_gpt_export_matches_transformers(gpt: Path) -> None:
    from transformers import AutoTokenizer, GPT2LMHeadModel

    final = gpt / "final"
    hf = GPT2LMHeadModel.from_pretrained(final, attn_implementation="eager").eval()
    ours = CausalLM(read_checkpoint(final).cfg).eval()
    load_into(ours, read_checkpoint(final), require_heads=True)
    tok = AutoTokenizer.from_pretrained(final)
    texts = ["The history of the", "In 1998 the river", "A"]
    ids = [tok(t)["input_ids"] for t in texts]
    assert ids == [load_tokenizer(final).encode(t, add_special_tokens=False).ids for t in texts]
    width = max(map(len, ids))
    input_ids = torch.tensor([[0] * (width - len(r)) + r for r in ids])  # left padding
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in ids])
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    theirs = hf(input_ids=input_ids, attention_mask=mask, position_ids=position_ids).logits
    diff = (ours(input_ids, mask)[mask.bool()] - theirs[mask.bool()]).abs().max().item()
    assert diff < 1e-4, f"GPT-2 logits: max abs diff {diff:.2e}"


def test_generate_cli_continues_prompts(gpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    cli("generate", f"model={gpt}", "text=The history of", "text=In", f"output={out}",
        "generation.max_new_tokens=8")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["input"] for r in rows] == ["The history of", "In"]
    assert all(isinstance(r["output"], str) for r in rows)


def test_span_pretraining_and_seq2seq_finetuning(t5: dict[str, Path]) -> None:
    pre = json.loads((t5["pre"] / "summary.json").read_text())
    assert pre["objective"] == "span"
    assert pre["end"]["val_lm_loss"] < pre["start"]["val_lm_loss"], pre
    summary = json.loads((t5["mt"] / "summary.json").read_text())
    assert {"bleu", "chrf", "rouge1", "rougeL"} <= set(summary["dev"]), summary
    predictions = (t5["mt"] / "dev-predictions.txt").read_text(encoding="utf-8").splitlines()
    assert len(predictions) == 20


@torch.no_grad()
def test_seq2seq_export_matches_transformers(t5: dict[str, Path]) -> None:
    from transformers import T5ForConditionalGeneration

    final = t5["mt"] / "final"
    hf = T5ForConditionalGeneration.from_pretrained(final, attn_implementation="eager").eval()
    checkpoint = read_checkpoint(final)
    ours = Seq2SeqLM(checkpoint.cfg).eval()
    load_into(ours, checkpoint, require_heads=True)
    tokenizer = load_tokenizer(final)
    sources = ["A man is riding a bike.", "Two dogs play in the snow near a small house."]
    rows = [tokenizer.encode(s).ids for s in sources]
    width = max(map(len, rows))
    input_ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    mask = (input_ids != 0).long()
    decoder_ids = torch.tensor([[0, 5, 9, 11], [0, 7, 7, 3]])
    theirs = hf(input_ids=input_ids, attention_mask=mask, decoder_input_ids=decoder_ids).logits
    diff = (ours(input_ids, mask, decoder_ids) - theirs).abs().max().item()
    assert diff < 1e-4, f"T5 logits: max abs diff {diff:.2e}"


def test_evaluate_and_generate_seq2seq(t5: dict[str, Path], tmp_path: Path) -> None:
    cli("evaluate", f"model={t5['mt']}", f"file={t5['dev']}", f"output={tmp_path / 'r.md'}")
    table = (tmp_path / "r.md").read_text()
    assert "bleu" in table and "chrf" in table
    out = tmp_path / "g.jsonl"
    cli("generate", f"model={t5['mt']}", "text=A dog runs.", f"output={out}")
    assert json.loads(out.read_text())["input"] == "A dog runs."


def test_generate_can_show_the_sentinels_of_a_span_filling(t5: dict[str, Path], tmp_path: Path) -> None:
    """A span-corruption model answers in sentinels (`<extra_id_0> span </s>`): shown on request,
    they are the only difference from the plain output."""
    outputs = {}
    for show in ("true", "false"):
        out = tmp_path / f"{show}.jsonl"
        cli("generate", f"model={t5['pre']}", "text=A dog <extra_id_0> through the water.",
            "generation.max_new_tokens=12", f"generation.show_special_tokens={show}", f"output={out}")
        outputs[show] = json.loads(out.read_text())["output"]
    shown, plain = outputs["true"], outputs["false"]
    assert re.search(r"<extra_id_\d+>|</s>", shown), shown
    assert " ".join(re.sub(r"<extra_id_\d+>|</s>|<pad>", " ", shown).split()) == " ".join(plain.split())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["mode=continue"], "needs a decoder"),
        (["generation.top_p=0"], "top_p"),
        (["generation.num_beams=0"], "num_beams"),
        (["text= "], "empty"),
        (["text=" + "word " * 600], "reads at most"),  # past what it was fine-tuned on
    ],
)
def test_generate_bad_input(t5: dict[str, Path], args: list[str], message: str, capsys) -> None:
    text = [] if any(a.startswith("text=") for a in args) else ["text=A dog."]
    assert main(["generate", f"model={t5['mt']}", *text, *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


@torch.no_grad()
def test_perplexity_matches_transformers_loss(gpt: Path, root: Path) -> None:
    """`plmkit evaluate` on raw text: non-overlapping windows, so the total negative
    log-likelihood is the sum of Transformers' per-window losses times their targets."""
    from transformers import GPT2LMHeadModel

    from plmkit.config import CorpusConfig, EvaluateConfig
    from plmkit.stages import evaluate
    from plmkit.tasks.lm.perplexity import text_stream

    text = root / "eval.txt"
    text.write_text("The river flows north.\n\nA second document here, with words.\n", encoding="utf-8")
    metrics = evaluate.run(EvaluateConfig(model=str(gpt), file=str(text), stride=64,
                                          output=str(root / "ppl.md")))
    final = gpt / "final"
    checkpoint = read_checkpoint(final)
    stream, words = text_stream([str(text)], CorpusConfig(), load_tokenizer(final),
                                checkpoint.cfg.eos_token_id)
    hf = GPT2LMHeadModel.from_pretrained(final).eval()
    tokens = torch.from_numpy(stream)
    total = 0.0
    for start in range(0, len(tokens) - 1, 64):
        window = tokens[start : start + 65][None]
        total += hf(window, labels=window).loss.item() * (window.shape[1] - 1)
    expected = torch.tensor(total / (len(tokens) - 1)).exp().item()
    assert words == 10
    assert abs(metrics["ppl"] - expected) / expected < 1e-4, (metrics, expected)


def test_export_other_architectures_of_the_family(gpt: Path, t5: dict[str, Path], tmp_path: Path) -> None:
    import transformers

    for model, architecture in ((gpt, "GPT2Model"), (t5["pre"], "T5EncoderModel")):
        cli("export", f"model={model}", f"architecture={architecture}", f"output={tmp_path / architecture}")
        _, info = getattr(transformers, architecture).from_pretrained(
            tmp_path / architecture, output_loading_info=True)
        assert not any(info.values()), f"{architecture}: {info}"
    assert main(["export", f"model={gpt}", "architecture=BertModel", f"output={tmp_path / 'x'}"]) == 2
    assert not (tmp_path / "x").exists()


def test_seq2seq_target_column_missing(t5: dict[str, Path], tmp_path: Path, capsys) -> None:
    bad = tmp_path / "pairs.tsv"
    bad.write_text("source\ttranslation\nA dog.\tEin Hund.\n", encoding="utf-8")
    code = main(["finetune", "task=seq2seq", f"init={t5['pre']}", f"train_file={bad}",
                 "table.text_column=source", "table.label_column=target", f"output={tmp_path / 'o'}"])
    err = capsys.readouterr().err
    assert code == 2 and "no column 'target'" in err and f"{bad}:1" in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


def test_prompt_longer_than_the_context_window(gpt: Path, capsys) -> None:
    long_prompt = " ".join(["word"] * 200)  # > 64 positions of the tiny model
    assert main(["generate", f"model={gpt}", f"text={long_prompt}"]) == 2
    err = capsys.readouterr().err
    assert "context window" in err and len(err.strip().splitlines()) == 1, err
