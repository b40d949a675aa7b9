"""CMRC 2018 extractive QA from the demo's Chinese BERT: plmkit vs a plain Transformers loop.

Why: `plmkit finetune task=qa` re-implements the SQuAD-style recipe (question + context pairs cut
into overlapping windows, answer tokens from character offsets, [CLS] when a window misses the
answer, n-best span decoding back to characters). If it is right, the usual hand-written
Transformers loop over the same exported model reaches the same EM/F1. It also checks interop:
the model `make demo` pretrains is exported as a Hugging Face directory (BertForPreTraining +
tokenizer files), and Transformers must read both the weights and the tokenizer from it.

Both sides start from that directory (`--model`, default runs/demo/hf-model), read the same
subset files (the first --train-questions of cmrc2018_trial.json and the first --dev-questions
of cmrc2018_dev.json, in CMRC 2018's own format, written to --out), use the same max length,
stride, answer length, n-best, fine-tuning dropout, batch size, epochs and AdamW settings
(bench/hf_loop.py), and are scored by the same function (plmkit's `qa_metrics`, CMRC 2018's
character-level EM/F1). The Transformers side is `BertForQuestionAnswering` with the
directory's tokenizer, windowed the standard way (`truncation="only_second"`,
`return_overflowing_tokens`, `stride`, `return_offsets_mapping`), labelled and decoded as in
Transformers' own QA examples (top n-best starts × top n-best ends). The bench first compares
the two sides' windows of the dev set token for token.

    python bench/parity_qa.py [--model runs/demo/hf-model] [--dev-questions 1000] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import hf_loop
import numpy as np
import torch

CMRC = Path(__file__).resolve().parents[2] / "shared" / "data" / "cmrc2018"
ROOT = Path(__file__).resolve().parents[1]


def write_subset(source: Path, target: Path, limit: int) -> None:
    """The first `limit` questions of a CMRC 2018 file (passages in order), same format."""
    passages, kept = [], 0
    for passage in json.loads(source.read_text(encoding="utf-8")):
        if limit and kept >= limit:
            break
        qas = passage["qas"][: limit - kept] if limit else passage["qas"]
        passages.append({**passage, "qas": qas})
        kept += len(qas)
    target.write_text(json.dumps(passages, ensure_ascii=False), encoding="utf-8")


def read_cmrc(path: Path) -> list[dict]:
    """Questions of a CMRC 2018 file: id, question, context, answer texts (numbers as text).
    Questions with no text (two in trial) are left out, as plmkit's reader does."""
    out = []
    for passage in json.loads(path.read_text(encoding="utf-8")):
        for qa in passage["qas"]:
            if not qa["query_text"].strip():
                continue
            answers = [as_text(a) for a in qa["answers"]]
            out.append(
                {
                    "id": qa["query_id"],
                    "question": qa["query_text"],
                    "context": passage["context_text"],
                    "answers": answers,
                }
            )
    return out


def as_text(answer: object) -> str:
    """An answer as text: CMRC 2018 dev holds some numbers (2011.0 → "2011")."""
    if isinstance(answer, float) and answer.is_integer():
        return str(int(answer))
    return str(answer)


# ----------------------------------------------------------------------------- plmkit


def run_plmkit(args: argparse.Namespace, files: dict[str, Path], out: Path) -> dict[str, float]:
    """`plmkit finetune task=qa` through its Python API; dev EM/F1 and times."""
    from plmkit.config import FinetuneConfig, QAConfig, TrainConfig
    from plmkit.stages import finetune

    shutil.rmtree(out, ignore_errors=True)
    cfg = FinetuneConfig(
        task="qa",
        init=str(args.model),
        train_file=str(files["train"]),
        dev_file=str(files["dev"]),
        output=str(out),
        max_length=args.max_length,
        epochs=args.epochs,
        dropout=args.dropout,
        qa=QAConfig(
            stride=args.stride,
            max_question_length=args.max_question_length,
            max_answer_length=args.max_answer_length,
            n_best=args.n_best,
            version_2=False,
            metric="cmrc",
        ),
        train=TrainConfig(
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
        ),
    )
    started = time.perf_counter()
    summary = finetune.run(cfg)
    return {
        **summary["dev"],
        "train_s": summary["train_time_s"],
        "total_s": time.perf_counter() - started,
        "steps": summary["steps"],
    }


# ----------------------------------------------------------------------------- Transformers


def windows(tokenizer, examples: list[dict], args: argparse.Namespace):
    """The standard encoding: question + context pairs, context cut into overlapping windows."""
    return tokenizer(
        [ex["question"] for ex in examples],
        [ex["context"] for ex in examples],
        truncation="only_second",
        max_length=args.max_length,
        stride=args.stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )


def answer_tokens(offsets, sequence_ids, start_char: int, end_char: int) -> tuple[int, int]:
    """First and last token of [start_char, end_char) when the window's context holds it all,
    else (0, 0): [CLS]. The token walk of Transformers' QA examples."""
    first = sequence_ids.index(1)
    last = len(sequence_ids) - 1 - sequence_ids[::-1].index(1)
    if not (offsets[first][0] <= start_char and offsets[last][1] >= end_char):
        return 0, 0
    while first <= last and offsets[first][0] <= start_char:
        first += 1
    while offsets[last][1] >= end_char:
        last -= 1
    return first - 1, last + 1


def train_rows(tokenizer, examples: list[dict], args: argparse.Namespace) -> list[dict]:
    """Training windows with start/end targets from the first answer found in the context."""
    located = []
    for ex in examples:
        found = [(ex["context"].find(a), a) for a in ex["answers"] if a]
        found = [(start, a) for start, a in found if start >= 0]
        if found:  # plmkit skips these too: no target to learn from
            located.append((ex, found[0][0], found[0][0] + len(found[0][1])))
    enc = windows(tokenizer, [ex for ex, _, _ in located], args)
    rows = []
    for i, owner in enumerate(enc["overflow_to_sample_mapping"]):
        _, start_char, end_char = located[owner]
        start, end = answer_tokens(
            enc["offset_mapping"][i], enc.sequence_ids(i), start_char, end_char
        )
        rows.append(
            {
                "input_ids": enc["input_ids"][i],
                "token_type_ids": enc["token_type_ids"][i],
                "start_positions": start,
                "end_positions": end,
            }
        )
    return rows


def collate(rows: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad to the longest window; targets when the rows have them."""
    longest = max(len(row["input_ids"]) for row in rows)
    ids = torch.full((len(rows), longest), pad_id)  # (B, T)
    types = torch.zeros((len(rows), longest), dtype=torch.long)
    mask = torch.zeros((len(rows), longest), dtype=torch.long)
    for b, row in enumerate(rows):
        n = len(row["input_ids"])
        ids[b, :n] = torch.tensor(row["input_ids"])
        types[b, :n] = torch.tensor(row["token_type_ids"])
        mask[b, :n] = 1
    batch = {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}
    if "start_positions" in rows[0]:
        batch["start_positions"] = torch.tensor([row["start_positions"] for row in rows])
        batch["end_positions"] = torch.tensor([row["end_positions"] for row in rows])
    return batch


def window_logits(model, rows: list[dict], pad_id: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(start, end) logits of every window, unpadded, in window order."""
    out = []
    model.eval()
    with torch.inference_mode():
        for first in range(0, len(rows), 64):
            chunk = rows[first : first + 64]
            logits = model(**collate(chunk, pad_id))
            for b, row in enumerate(chunk):
                n = len(row["input_ids"])
                out.append((logits.start_logits[b, :n].numpy(), logits.end_logits[b, :n].numpy()))
    return out


def best_answers(enc, logits, examples: list[dict], args: argparse.Namespace) -> dict[str, str]:
    """Answer text per question id: the best start+end score over its windows among the top
    n-best starts × n-best ends inside the context, at most --max-answer-length tokens long."""
    best: dict[int, tuple[float, int, int]] = {}
    for i, (start, end) in enumerate(logits):
        sequence_ids, offsets = enc.sequence_ids(i), enc["offset_mapping"][i]
        owner = enc["overflow_to_sample_mapping"][i]
        for s in np.argsort(-start, kind="stable")[: args.n_best]:
            for e in np.argsort(-end, kind="stable")[: args.n_best]:
                if sequence_ids[s] != 1 or sequence_ids[e] != 1:
                    continue
                if e < s or e - s + 1 > args.max_answer_length:
                    continue
                score = float(start[s] + end[e])
                if owner not in best or score > best[owner][0]:
                    best[owner] = (score, offsets[s][0], offsets[e][1])
    return {
        ex["id"]: ex["context"][best[k][1] : best[k][2]] if k in best else ""
        for k, ex in enumerate(examples)
    }


def run_transformers(args: argparse.Namespace, files: dict[str, Path]) -> dict[str, float]:
    """The plain loop: BertForQuestionAnswering + the exported tokenizer; dev EM/F1 and times."""
    from transformers import AutoTokenizer, BertForQuestionAnswering

    from plmkit.tasks.qa.scores import qa_metrics

    started = time.perf_counter()
    torch.manual_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = BertForQuestionAnswering.from_pretrained(
        args.model, hidden_dropout_prob=args.dropout, attention_probs_dropout_prob=args.dropout
    )
    rows = train_rows(tokenizer, read_cmrc(files["train"]), args)
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
    dev = read_cmrc(files["dev"])
    enc = windows(tokenizer, dev, args)
    dev_rows = [
        {"input_ids": ids, "token_type_ids": types}
        for ids, types in zip(enc["input_ids"], enc["token_type_ids"])
    ]
    predictions = best_answers(enc, window_logits(model, dev_rows, pad), dev, args)
    metrics = qa_metrics(predictions, {ex["id"]: ex["answers"] for ex in dev}, "cmrc")
    return {**metrics, "train_s": train_s, "total_s": time.perf_counter() - started, "steps": steps}


# ----------------------------------------------------------------------------- checks and report


def same_windows(args: argparse.Namespace, files: dict[str, Path]) -> dict[str, int]:
    """Window counts of both sides; dev windows equal token for token; equal training targets."""
    from transformers import AutoTokenizer

    from plmkit.tasks.qa.answers import read_questions
    from plmkit.tasks.qa.features import encode_qa
    from plmkit.text.tokenizer import load_tokenizer

    ours_tok, theirs_tok = load_tokenizer(args.model), AutoTokenizer.from_pretrained(args.model)
    settings = {"max_length": args.max_length, "stride": args.stride}
    dev = read_questions(str(files["dev"]), need_answers=False)
    ours = encode_qa(ours_tok, dev, max_question_length=args.max_question_length, **settings)
    theirs = windows(theirs_tok, read_cmrc(files["dev"]), args)
    pairs = zip(ours.input_ids, theirs["input_ids"], ours.token_type_ids, theirs["token_type_ids"])
    train = read_questions(str(files["train"]))
    ours_train = encode_qa(
        ours_tok, train, max_question_length=args.max_question_length, training=True, **settings
    )
    theirs_train = train_rows(theirs_tok, read_cmrc(files["train"]), args)
    targets = zip(ours_train.starts, ours_train.ends, theirs_train)
    return {
        "plmkit": len(ours),
        "transformers": len(theirs["input_ids"]),
        "same": sum(int(a.tolist() == b and t.tolist() == u) for a, b, t, u in pairs),
        "train_plmkit": len(ours_train),
        "train_transformers": len(theirs_train),
        "same_targets": sum(
            int((s, e) == (row["start_positions"], row["end_positions"])) for s, e, row in targets
        )
        if len(ours_train) == len(theirs_train)
        else -1,  # windows out of step: no target comparison
    }


def report(args: argparse.Namespace, ours: dict, theirs: dict, check: dict[str, int]) -> None:
    print(
        f"\nCMRC 2018 dev (first {args.dev_questions} questions), {args.model}, first "
        f"{args.train_questions or 'all'} trial questions, {args.epochs:g} epochs "
        f"({ours['steps']} / {theirs['steps']} steps), lr {args.lr:g}, batch {args.batch_size}, "
        f"max_length {args.max_length}, stride {args.stride}, dropout {args.dropout:g}, "
        f"{args.threads} threads"
    )
    print(
        f"dev windows: plmkit {check['plmkit']}, Transformers {check['transformers']}, "
        f"identical token for token: {check['same']}; training windows: plmkit "
        f"{check['train_plmkit']}, Transformers {check['train_transformers']}, same answer "
        f"tokens: {check['same_targets']}"
    )
    print("| side | dev EM | dev F1 | train wall s | total wall s |")
    print("|---|---:|---:|---:|---:|")
    for side, m in (("plmkit `finetune task=qa`", ours), ("Transformers loop", theirs)):
        print(
            f"| {side} | {m['em'] * 100:.2f} | {m['f1'] * 100:.2f} | "
            f"{m['train_s']:.1f} | {m['total_s']:.1f} |"
        )
    print(
        f"difference: EM {abs(ours['em'] - theirs['em']) * 100:.2f} points, "
        f"F1 {abs(ours['f1'] - theirs['f1']) * 100:.2f} points"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=ROOT / "runs" / "demo" / "hf-model")
    parser.add_argument("--train-questions", type=int, default=0, help="0 = all of trial")
    parser.add_argument("--dev-questions", type=int, default=1000, help="0 = all of dev")
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--warmup", type=float, default=0.1, help="warm-up share of the steps")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--dropout", type=float, default=0.1, help="fine-tuning dropout")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--stride", type=int, default=32)
    parser.add_argument("--max-question-length", type=int, default=64)
    parser.add_argument("--max-answer-length", type=int, default=30)
    parser.add_argument("--n-best", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("/tmp/plmkit-bench-parity-qa"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    files = {"train": args.out / "train.json", "dev": args.out / "dev.json"}
    write_subset(CMRC / "cmrc2018_trial.json", files["train"], args.train_questions)
    write_subset(CMRC / "cmrc2018_dev.json", files["dev"], args.dev_questions)
    check = same_windows(args, files)
    ours = run_plmkit(args, files, args.out / "plmkit")
    theirs = run_transformers(args, files)
    report(args, ours, theirs, check)


if __name__ == "__main__":
    main()
