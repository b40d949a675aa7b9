"""A user's mistakes, table-driven: each gives one line naming what and where, exit 2, no
traceback, and leaves no output behind."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from plmkit.cli import main

NOT_UTF8 = b"ok line\nbad \xff\xfe\n"
GOOD_TSV = "text\tlabel\n" + "".join(f"句子{i}很好\t{i % 2}\n" for i in range(20))


def corpus(tmp: Path) -> Path:
    path = tmp / "corpus.txt"
    path.write_text("".join(f"第{i}段文字。这里是一些中文句子！\nEnglish line {i}.\n\n" for i in range(50)),
                    encoding="utf-8")
    return path


def tokenizer_dir(tmp: Path) -> Path:
    if (tmp / "tok").is_dir():  # made once: a second `plmkit tokenizer` would need overwrite=true
        return tmp / "tok"
    assert main(["tokenizer", f"inputs={corpus(tmp)}", f"output={tmp / 'tok'}", "vocab_size=200",
                 "min_frequency=1"]) == 0
    return tmp / "tok"


def write(tmp: Path, name: str, text: str | bytes) -> Path:
    path = tmp / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def finetune(tmp: Path, train: Path, *extra: str) -> list[str]:
    return ["finetune", f"tokenizer={tokenizer_dir(tmp)}", f"train_file={train}",
            f"output={tmp / 'out'}", "model.hidden_size=16", "model.num_heads=2",
            "model.intermediate_size=32", "model.num_layers=1", "train.max_steps=1", *extra]


def truncated_checkpoint(tmp: Path) -> list[str]:
    tok = tokenizer_dir(tmp)
    model_dir = tmp / "model"
    assert main(finetune(tmp, write(tmp, "t.tsv", GOOD_TSV))) == 0
    (tmp / "out").rename(model_dir)
    weights = model_dir / "final" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    return ["finetune", f"init={model_dir}", f"tokenizer={tok}",
            f"train_file={write(tmp, 'u.tsv', GOOD_TSV)}", f"output={tmp / 'out'}"]


def changed_resume(tmp: Path) -> list[str]:
    shards = tmp / "shards"
    assert main(["prepare", f"inputs={corpus(tmp)}", f"tokenizer={tokenizer_dir(tmp)}",
                 f"output={shards}", "workers=1"]) == 0
    base = ["pretrain", f"shards={shards}", "model.hidden_size=16", "model.num_heads=2",
            "model.intermediate_size=32", "model.num_layers=1", "objective.seq_len=32",
            "train.batch_size=4", "train.max_steps=2"]
    assert main([*base, f"output={tmp / 'run'}"]) == 0
    (tmp / "run").rename(tmp / "out")
    return [*base, "model.hidden_size=32", f"output={tmp / 'out'}", "resume=true"]


# (case id, builder returning argv, fragments the message must contain, whether `out` may exist)
CASES: list[tuple[str, Callable[[Path], list[str]], list[str], bool]] = [
    ("missing file", lambda t: ["tokenizer", f"inputs={t / 'nope.txt'}", f"output={t / 'out'}"],
     ["nope.txt"], False),
    ("empty corpus", lambda t: ["tokenizer", f"inputs={write(t, 'empty.txt', '')}", f"output={t / 'out'}"],
     ["empty.txt"], False),
    ("non-UTF-8 bytes", lambda t: ["tokenizer", f"inputs={write(t, 'bad.txt', NOT_UTF8)}",
                                   f"output={t / 'out'}"], ["bad.txt:2", "UTF-8"], False),
    ("vocab too small", lambda t: ["tokenizer", f"inputs={corpus(t)}", f"output={t / 'out'}", "vocab_size=3"],
     ["vocab_size"], False),
    ("unknown config key", lambda t: ["pretrain", "train.learning_rate=1", f"output={t / 'out'}"],
     ["train.learning_rate"], False),
    ("missing column", lambda t: finetune(t, write(t, "t.tsv", "sentence\tlabel\nhi\t1\n")),
     ["t.tsv", "'text'"], False),
    ("label outside label set", lambda t: finetune(t, write(t, "t.tsv", GOOD_TSV + "坏\t7\n"),
                                                   "labels=['0','1']"), ["t.tsv:22", "'7'"], False),
    ("empty label", lambda t: finetune(t, write(t, "t.tsv", GOOD_TSV + "坏\t\n")), ["t.tsv:22", "label"], False),
    ("max length 0", lambda t: finetune(t, write(t, "t.tsv", GOOD_TSV), "max_length=0"), ["max_length"], False),
    ("missing shards", lambda t: ["pretrain", f"shards={t / 'noshards'}", f"output={t / 'out'}"],
     ["noshards"], False),
    ("truncated checkpoint", truncated_checkpoint, ["model.safetensors"], False),
    ("resume under changed config", changed_resume, ["model.hidden_size", "16", "32"], True),
    ("heads do not divide hidden", lambda t: finetune(t, write(t, "t.tsv", GOOD_TSV), "model.num_heads=3"),
     ["model.hidden_size 16", "model.num_heads 3"], False),
    ("batch size 0", lambda t: finetune(t, write(t, "t.tsv", GOOD_TSV), "train.batch_size=0"),
     ["train.batch_size"], False),
    ("bad val fraction", lambda t: ["prepare", f"inputs={corpus(t)}", "val_fraction=1.5",
                                    f"output={t / 'out'}"], ["val_fraction"], False),
]


@pytest.mark.parametrize(("case", "build", "fragments", "out_may_exist"), CASES,
                         ids=[c[0] for c in CASES])
def test_user_mistake_gives_one_clear_line(case: str, build: Callable[[Path], list[str]],
                                           fragments: list[str], out_may_exist: bool,
                                           tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = build(tmp_path)
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, f"{case}: exit {code}, stderr {err!r}"
    assert len(err.splitlines()) == 1, f"{case}: expected one line, got:\n{err}"
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, f"{case}: {fragment!r} not in {err!r}"
    if not out_may_exist:
        assert not (tmp_path / "out").exists(), f"{case}: left output behind"


def test_torchrun_is_for_training_verbs_only(tmp_path: Path, monkeypatch, capsys) -> None:
    """Verbs that only read and write (evaluate, predict, export…) run as one process; under
    torchrun they say so instead of racing to write."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    code = main(["evaluate", f"model={tmp_path / 'm'}", f"file={tmp_path / 'test.tsv'}"])
    err = capsys.readouterr().err
    assert code == 2 and "torchrun runs `plmkit pretrain` and `finetune`" in err, err
    assert not (tmp_path / "out").exists()
