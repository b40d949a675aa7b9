"""Issue 14's bad inputs, table-driven like tests/test_bad_input.py: text that is not text,
shards whose tokenizer was swapped, settings that contradict, outputs that would destroy
inputs or a user's folder, a model given to a loader of the wrong task. Each exits 2 with one
line and leaves every file that was there as it was (SHA-256 compared) and nothing new."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from plmkit.cli import main
from tests.test_bad_input import GOOD_TSV, corpus, tokenizer_dir, write

TINY = ["model.hidden_size=16", "model.num_heads=2", "model.intermediate_size=32",
        "model.num_layers=1", "objective.seq_len=32", "train.batch_size=4", "train.max_steps=2"]


def shards(tmp: Path) -> Path:
    if not (tmp / "shards").is_dir():
        assert main(["prepare", f"inputs={corpus(tmp)}", f"tokenizer={tokenizer_dir(tmp)}",
                     f"output={tmp / 'shards'}", "workers=1"]) == 0
    return tmp / "shards"


def pretrained(tmp: Path) -> Path:
    if not (tmp / "run").is_dir():
        assert main(["pretrain", f"shards={shards(tmp)}", f"output={tmp / 'run'}", *TINY]) == 0
    return tmp / "run"


def swapped_tokenizer(tmp: Path) -> list[str]:
    path = shards(tmp) / "tokenizer" / "tokenizer.json"
    path.write_text(path.read_text(encoding="utf-8").replace('"[UNK]"', '"[UNKNOWN]"', 1),
                    encoding="utf-8")
    return ["pretrain", f"shards={tmp / 'shards'}", f"output={tmp / 'out'}", *TINY]


def foreign(tmp: Path) -> Path:
    folder = tmp / "mine"
    folder.mkdir(exist_ok=True)
    (folder / "thesis.tex").write_text("years of work\n")
    return folder


def labelled(tmp: Path) -> Path:
    (tmp / "data").mkdir(exist_ok=True)
    return write(tmp / "data", "train.tsv", GOOD_TSV)


# (case id, builder returning argv, fragments the message must contain)
CASES: list[tuple[str, Callable[[Path], list[str]], list[str]]] = [
    ("NUL bytes in a text input",
     lambda t: ["tokenizer", f"inputs={write(t, 'nul.txt', b'abc' + bytes(1) + b'def')}",
                f"output={t / 'out'}"], ["nul.txt:1", "NUL byte"]),
    ("UTF-16 text without a byte-order mark",
     lambda t: ["tokenizer", f"inputs={write(t, 'u16.txt', 'hello there'.encode('utf-16-le'))}",
                f"output={t / 'out'}"], ["u16.txt", "UTF-16 without a byte-order mark"]),
    ("shards' tokenizer swapped after prepare", swapped_tokenizer, ["tokenizer.json", "sha256"]),
    ("pretrain model.* together with init=",
     lambda t: ["pretrain", f"shards={shards(t)}", f"init={pretrained(t)}", "model.num_layers=4",
                f"output={t / 'out'}"], ["model.*", "init="]),
    ("finetune model.* together with init=",
     lambda t: ["finetune", f"init={pretrained(t)}", f"train_file={labelled(t)}",
                "model.num_layers=4", f"output={t / 'out'}"], ["model.*", "init="]),
    ("resume=true with overwrite=true",
     lambda t: ["pretrain", f"shards={shards(t)}", f"output={t / 'out'}", "resume=true",
                "overwrite=true", *TINY], ["pass one of them"]),
    ("a pretrained model given to predict",
     lambda t: ["predict", f"model={pretrained(t)}", "text=hello", f"output={t / 'out' / 'p.jsonl'}"],
     ["holds no fine-tuned task", "BertForPreTraining"]),
    ("tokenizer output = its input folder", lambda t: ["tokenizer", f"inputs={corpus(t).parent}",
                                                        f"output={corpus(t).parent}"],
     ["is the input"]),
    ("prepare output = a parent of its input",
     lambda t: ["prepare", f"inputs={corpus(t)}", f"tokenizer={tokenizer_dir(t)}", f"output={t}"],
     ["contains the input"]),
    ("prepare output = a folder plmkit did not write",
     lambda t: ["prepare", f"inputs={corpus(t)}", f"tokenizer={tokenizer_dir(t)}",
                f"output={foreign(t)}"], ["not written by plmkit"]),
    ("pretrain output inside its shards",
     lambda t: ["pretrain", f"shards={shards(t)}", f"output={t / 'shards' / 'run'}", *TINY],
     ["inside the input"]),
    ("pretrain output = another verb's output",
     lambda t: ["pretrain", f"shards={shards(t)}", f"output={tokenizer_dir(t)}", *TINY],
     ["`plmkit tokenizer` output"]),
    ("pretrain output = a finished run, no resume/overwrite",
     lambda t: ["pretrain", f"shards={shards(t)}", f"output={pretrained(t)}", *TINY],
     ["pass resume=true to continue it or overwrite=true"]),
    ("finetune output = the folder of its train_file",
     lambda t: ["finetune", f"init={pretrained(t)}", f"train_file={labelled(t)}",
                f"output={t / 'data'}"], ["contains the input"]),
    ("finetune output = its init run",
     lambda t: ["finetune", f"init={pretrained(t)}", f"train_file={labelled(t)}",
                f"output={t / 'run'}"], ["is the input"]),
    ("export output = a folder plmkit did not write",
     lambda t: ["export", f"model={pretrained(t)}", f"output={foreign(t)}"],
     ["not written by plmkit"]),
    ("export output inside the model it exports",
     lambda t: ["export", f"model={pretrained(t)}", f"output={t / 'run' / 'hf'}"],
     ["inside the input"]),
]


def checksums(root: Path) -> dict[str, str]:
    """Every file's SHA-256 and every directory (so an empty one left behind shows too)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            if p.is_file() else "dir" for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize(("case", "build", "fragments"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_touches_nothing(case: str, build: Callable[[Path], list[str]],
                                                   fragments: list[str], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    argv = build(tmp_path)
    before = checksums(tmp_path)
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, f"{case}: exit {code}, stderr {err!r}"
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, f"{case}: {fragment!r} not in {err!r}"
    assert checksums(tmp_path) == before, f"{case}: files changed or appeared"
