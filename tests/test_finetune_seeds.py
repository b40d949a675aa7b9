"""`finetune seeds=N`: the folder of the seeds is plmkit's own, so a rerun is refused with one line
naming the seed run it would overwrite, and `resume=true` continues (here: finds every seed done)."""

from __future__ import annotations

import json
from pathlib import Path

from test_task_contract import BERT, STEPS, _classification, sentence, write

from plmkit.cli import main


def test_seeds_folder_refuses_a_rerun_and_resumes(tmp_path: Path, capsys) -> None:
    train, dev, _, _ = _classification(tmp_path)
    corpus = write(tmp_path / "c.txt", [sentence(i) for i in range(200)])
    assert main(["tokenizer", f"inputs={corpus}", f"output={tmp_path / 'tok'}", "vocab_size=200",
                 "min_frequency=1", "corpus.doc_split=line"]) == 0
    run = tmp_path / "run"
    args = ["finetune", f"tokenizer={tmp_path / 'tok'}", f"train_file={train}", f"dev_file={dev}",
            f"output={run}", *BERT, *STEPS, "seeds=2"]
    assert main(args) == 0
    first = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    assert json.loads((run / ".plmkit.json").read_text(encoding="utf-8"))["verb"] == "finetune"
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "seed-0" in err and "already holds" in err and len(err.strip().splitlines()) == 1
    assert main([*args, "resume=true"]) == 0
    again = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    assert again["dev"] == first["dev"] and again["seeds"] == first["seeds"] == [0, 1]
