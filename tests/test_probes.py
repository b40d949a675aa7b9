"""`plmkit probe bias` and `plmkit probe robustness`: scores against references, and bad input.

The pseudo-log-likelihood is checked against a hand computation with Transformers'
BertForMaskedLM on a tiny random model (each shared token masked by hand), the causal score
against GPT2LMHeadModel; swapping the sentences of every pair must mirror the result. The
perturbations are checked for their rates, seeds and Chinese variants, and the robustness
probe end to end against `plmkit evaluate` on the perturbed file.
"""

from __future__ import annotations

import csv
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from plmkit.cli import main
from plmkit.config.probes import BiasConfig
from plmkit.probes import bias, perturb, robustness
from plmkit.probes.likelihood import load_pair_scorer, shared_positions
from plmkit.tasks.ner.data import TaggedSentence
from tests.models.tiny_gpt import hf_gpt2

WORDS = ("the man woman is a doctor nurse old young people are poor rich lazy smart kids "
         "black white he she his her can not drive cook").split()
PAIRS = [  # (more, less, bias type)
    ("the woman is a nurse", "the man is a nurse", "gender"),
    ("old people are lazy", "young people are lazy", "age"),
    ("she can not drive", "he can not drive", "gender"),
    ("poor kids are lazy", "rich kids are lazy", "socioeconomic"),
    ("black kids are poor", "white kids are poor", "race-color"),
    ("her kids can cook", "his kids can cook", "gender"),
]


def cli(*args: str) -> int:
    return main(list(args))


def make_mlm(root: Path, architecture: str = "BertForMaskedLM") -> Path:
    """A tiny random BertForMaskedLM or ElectraForMaskedLM (a generator whose embeddings are
    narrower than its layers), weights moved off init, and a WordPiece vocabulary."""
    import transformers

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    shape = dict(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=64, max_position_embeddings=32)
    torch.manual_seed(0)
    if architecture == "ElectraForMaskedLM":
        model = transformers.ElectraForMaskedLM(transformers.ElectraConfig(embedding_size=16, **shape))
    else:
        model = transformers.BertForMaskedLM(transformers.BertConfig(**shape))
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.3 * torch.randn_like(param))
    model.eval().save_pretrained(root)
    (root / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return root


@pytest.fixture(scope="module")
def mlm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_mlm(tmp_path_factory.mktemp("mlm"))


def write_crows(path: Path, pairs: list[tuple[str, str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["", "sent_more", "sent_less", "stereo_antistereo", "bias_type"])
        for i, (more, less, kind) in enumerate(pairs):
            writer.writerow([i, more, less, "stereo", kind])
    return path


def test_shared_tokens_are_aligned_as_difflib_opcodes_say() -> None:
    assert shared_positions([5, 6, 7, 8], [5, 9, 7, 8]) == ([0, 2, 3], [0, 2, 3])
    assert shared_positions([1, 2, 3], [1, 4, 4, 3]) == ([0, 2], [0, 3])


@pytest.mark.parametrize("architecture", ["BertForMaskedLM", "ElectraForMaskedLM"])
def test_pll_matches_a_hand_computation_with_transformers(architecture: str, tmp_path: Path) -> None:
    import transformers

    mlm_dir = make_mlm(tmp_path, architecture)
    hf = getattr(transformers, architecture).from_pretrained(mlm_dir).eval()
    tok = transformers.BertTokenizerFast.from_pretrained(mlm_dir)  # reads vocab.txt
    # shared words by hand: all but the group word (position 1 in both sentences)
    more, less = "the woman is a nurse", "the man is a nurse"
    expected = []
    for sentence in (more, less):
        ids = tok(sentence)["input_ids"]  # [CLS] the X is a nurse [SEP]
        total = 0.0
        for p in (1, 3, 4, 5):  # the, is, a, nurse
            masked = torch.tensor([ids])
            masked[0, p] = tok.mask_token_id
            with torch.no_grad():
                logp = torch.log_softmax(hf(masked).logits[0, p].double(), -1)
            total += float(logp[ids[p]])
        expected.append(total)
    got = load_pair_scorer(str(mlm_dir), "cpu").score([(more, less)])[0]
    assert np.abs(got - np.array(expected)).max() < 1e-4, (got, expected)


def test_swapping_the_sentences_mirrors_the_result(mlm_dir: Path, tmp_path: Path) -> None:
    forward = bias.run(BiasConfig(model=str(mlm_dir), file=str(write_crows(tmp_path / "a.csv", PAIRS)),
                                  output=str(tmp_path / "out"), bootstrap=200))
    swapped = bias.run(BiasConfig(model=str(mlm_dir), file=str(write_crows(
        tmp_path / "b.csv", [(less, more, kind) for more, less, kind in PAIRS])), bootstrap=200))
    total, flipped = forward["table"][-1], swapped["table"][-1]
    assert total["bias_type"] == "all" and total["pairs"] == len(PAIRS) and total["ties"] == 0
    assert flipped["stereotype_preferred"] == len(PAIRS) - total["stereotype_preferred"]
    assert flipped["share_%"] == pytest.approx(100 - total["share_%"], abs=0.1)
    for a, b in zip(forward["pairs"], swapped["pairs"], strict=True):
        assert a["score_more"] == pytest.approx(b["score_less"], abs=1e-5)
        assert a["score_less"] == pytest.approx(b["score_more"], abs=1e-5)
    written = json.loads((tmp_path / "out" / "bias.json").read_text())
    assert written["table"] == forward["table"]
    text = (tmp_path / "out" / "bias.md").read_text()
    assert "| gender" in text and "Blodgett et al. (2021)" in text


def test_causal_lm_scores_the_sentence_log_likelihood(tmp_path: Path) -> None:
    from tokenizers import Tokenizer

    (tmp_path / "text.txt").write_text("\n".join(" ".join(p[:2]) for p in PAIRS * 20) + "\n")
    assert cli("tokenizer", f"inputs={tmp_path / 'text.txt'}", f"output={tmp_path / 'tok'}",
               "kind=bpe", "vocab_size=300") == 0
    tok = Tokenizer.from_file(str(tmp_path / "tok" / "tokenizer.json"))
    eos = tok.token_to_id("<|endoftext|>")
    hf = hf_gpt2(vocab_size=tok.get_vocab_size(), bos_token_id=eos, eos_token_id=eos)
    hf.save_pretrained(tmp_path / "gpt")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (tmp_path / "tok" / name).is_file():
            shutil.copy(tmp_path / "tok" / name, tmp_path / "gpt" / name)
    more, less = PAIRS[1][:2]
    expected = []
    for sentence in (more, less):
        ids = torch.tensor([[eos, *tok.encode(sentence).ids]])
        with torch.no_grad():
            logp = torch.log_softmax(hf(ids).logits[0, :-1].double(), -1)
        expected.append(float(logp.gather(1, ids[0, 1:, None]).sum()))
    got = load_pair_scorer(str(tmp_path / "gpt"), "cpu").score([(more, less)])[0]
    assert np.abs(got - np.array(expected)).max() < 1e-3, (got, expected)


def test_perturbation_rates_hold_and_seeds_repeat() -> None:
    text = " ".join(random.Random(1).choice(WORDS) for _ in range(3000))
    letters = sum(c.isalpha() for c in text)
    for noise, rate in ((perturb.delete_chars, 0.1), (perturb.keyboard_typos, 0.2),
                        (perturb.full_width, 0.3)):
        out = noise(text, rate, random.Random(0))
        changed = letters - len(out.replace(" ", "")) if noise is perturb.delete_chars else \
            sum(a != b for a, b in zip(text, out, strict=True) if a != " ")
        sigma = (letters * rate * (1 - rate)) ** 0.5
        assert abs(changed - rate * letters) < 4 * sigma, (noise.__name__, changed, rate * letters)
        assert noise(text, rate, random.Random(0)) == out != noise(text, rate, random.Random(1))
    words = text.split()
    kept = [w for w in perturb.drop_words(words, 0.25, random.Random(0)) if w is not None]
    assert abs(len(words) - len(kept) - 750) < 4 * (3000 * 0.25 * 0.75) ** 0.5
    swapped = perturb.swap_chars("abcdef", 1.0, random.Random(0))
    assert swapped == "badcfe"  # every character swapped once with its neighbour


def test_chinese_variants_change_the_characters_as_stated() -> None:
    rng = random.Random(0)
    assert perturb.traditional("这个说法很对", 1.0, rng) == "這個說法很對"
    assert perturb.full_width("OK 1!", 1.0, rng) == "ＯＫ\u3000１！"
    assert perturb.half_width("好，ＯＫ！", 1.0, rng) == "好,OK!"
    assert perturb.half_width(perturb.full_width("a b~", 1.0, rng), 1.0, rng) == "a b~"
    inserted = perturb.insert_chars("好书值得一读", 1.0, rng)
    assert len(inserted) == 12 and inserted[::2] == "好书值得一读"
    words, joiner = perturb.split_words("我喜欢这本书")
    assert joiner == "" and "".join(words) == "我喜欢这本书" and len(words) < 6


def test_a_tagged_sentence_keeps_each_tag_with_its_word() -> None:
    row = TaggedSentence(("张", "三", "在", "北", "京"), ("B-PER", "I-PER", "O", "B-LOC", "I-LOC"), 1)
    dropped = robustness.perturb_row(row, perturb.PERTURBATIONS["delete"], 0.5, random.Random(3))
    assert 0 < len(dropped.words) < 5
    assert [row.tags[row.words.index(w)] for w in dropped.words] == list(dropped.tags)


def sentiment_rows(rng: random.Random, count: int) -> str:
    """TSV rows whose label is carried by one word (good/great/lovely vs bad/awful/boring)."""
    filler = "the film story actors scenes plot music ending was is and a very quite really".split()
    lines = []
    for _ in range(count):
        label = rng.randint(0, 1)
        words = [rng.choice(filler) for _ in range(rng.randint(4, 9))]
        cue = ("good", "great", "lovely") if label else ("bad", "awful", "boring")
        words.insert(rng.randint(0, len(words)), rng.choice(cue))
        lines.append(f"{' '.join(words)}\t{label}\n")
    return "sentence\tlabel\n" + "".join(lines)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny classifier fine-tuned from random init on 1,000 rows whose label is one cue word
    (~7 s; one thread: on a busy 2-core box two threads wait on each other)."""
    root = tmp_path_factory.mktemp("robust")
    rng = random.Random(0)
    (root / "train.tsv").write_text(sentiment_rows(rng, 1000))
    (root / "dev.tsv").write_text(sentiment_rows(rng, 200))
    (root / "text.txt").write_text(sentiment_rows(rng, 500))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert cli("tokenizer", f"inputs={root / 'text.txt'}", f"output={root / 'tok'}",
                   "vocab_size=200") == 0
        assert cli("finetune", f"tokenizer={root / 'tok'}", f"train_file={root / 'train.tsv'}",
                   f"dev_file={root / 'dev.tsv'}", f"output={root / 'cls'}", "max_length=32",
                   "table.text_column=sentence", "pooling=mean", "model.hidden_size=32",
                   "model.num_layers=1", "model.num_heads=2", "model.intermediate_size=64",
                   "model.max_position=32", "train.max_steps=60", "train.batch_size=32",
                   "train.lr=3e-3") == 0
    finally:
        torch.set_num_threads(threads)
    return {"root": root, "cls": root / "cls", "dev": root / "dev.tsv"}


def test_robustness_deltas_are_what_evaluate_says_of_the_noisy_file(classifier, tmp_path) -> None:
    out = tmp_path / "report"
    assert cli("probe", "robustness", f"model={classifier['cls']}", f"file={classifier['dev']}",
               "perturbations=typo:0.2,drop_word", "seed=3", f"output={out}") == 0
    data = json.loads((out / "robustness.json").read_text())
    clean, typo, drop = data["results"]
    assert (clean["perturbation"], typo["rate"], drop["rate"]) == ("none", 0.2, 0.1)
    assert typo["rows_changed"] > 0.9 and 0 < drop["rows_changed"] < 1
    assert clean["accuracy"] > 0.9 and typo["accuracy"] < clean["accuracy"]  # typos hit the cue
    # the noisy rows, rebuilt and written as a file for `plmkit evaluate`
    from plmkit.tasks.registry import load_task_model

    tm = load_task_model(classifier["cls"], "cpu")
    rows = tm.family.read(classifier["dev"], tm.settings, 0)
    rng = random.Random("3:typo")
    noisy = [robustness.perturb_row(r, perturb.PERTURBATIONS["typo"], 0.2, rng) for r in rows]
    (tmp_path / "noisy.tsv").write_text(
        "sentence\tlabel\n" + "".join(f"{r.text}\t{r.label}\n" for r in noisy))
    for file, expected in ((classifier["dev"], clean), (tmp_path / "noisy.tsv", typo)):
        assert cli("evaluate", f"model={classifier['cls']}", f"file={file}",
                   f"output={tmp_path / 'eval.md'}") == 0
        table = (tmp_path / "eval.md").read_text().splitlines()
        accuracy = float(table[2].split("|")[4])  # model | file | examples | accuracy | ...
        assert accuracy == pytest.approx(100 * expected["accuracy"], abs=0.05)
    assert "| typo" in (out / "robustness.md").read_text()


def _fails(capsys: pytest.CaptureFixture, *args: str) -> str:
    assert cli(*args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_bad_input_is_one_line_and_writes_nothing(mlm_dir: Path, classifier, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    gender = tmp_path / "chbias" / "gender"
    gender.mkdir(parents=True)
    (gender / "gender_female_test.txt").write_text("她很好\n她很坏\n她来了\n")
    (gender / "gender_male_test.txt").write_text("他很好\n他很坏\n")
    err = _fails(capsys, "probe", "bias", f"model={mlm_dir}", f"file={gender}", f"output={out}")
    assert "3 sentences" in err and "gender_male_test.txt has 2" in err
    same = write_crows(tmp_path / "same.csv", [PAIRS[0], ("the man is a nurse", "the man  is a nurse", "gender")])
    err = _fails(capsys, "probe", "bias", f"model={mlm_dir}", f"file={same}", f"output={out}")
    assert "same.csv:3" in err and "skip_identical=true" in err
    good = write_crows(tmp_path / "good.csv", PAIRS)
    err = _fails(capsys, "probe", "bias", f"model={classifier['cls']}", f"file={good}", f"output={out}")
    assert "no masked-LM head (BertForSequenceClassification)" in err
    assert "not a probe" in _fails(capsys, "probe", "fairness", f"model={mlm_dir}")
    assert "kind must be one of" in _fails(capsys, "probe", f"bias.model={mlm_dir}")
    assert "'sideways'" in _fails(capsys, "probe", "robustness", f"model={classifier['cls']}",
                                  f"file={classifier['dev']}", "perturbations=sideways")
    assert not out.exists()


def test_probe_help_explains_kinds(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["probe", "--help"])
    text = capsys.readouterr().out
    assert "plmkit probe KIND key=value" in text and "bias.skip_identical" in text
    assert "robustness.perturbations" in text
