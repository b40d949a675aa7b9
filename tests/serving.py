"""Helpers of the server tests: a small fine-tuned classifier, and `plmkit serve` as a process.

The classifier is fine-tuned from random init on the demo's real reviews (a tiny shape, a few
dozen steps): what is tested is that the server answers what `plmkit predict` answers, not
how good the model is.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from plmkit.cli import main
from plmkit.stages.demo_data import build_demo_data

TINY = ["model.hidden_size=32", "model.num_layers=2", "model.num_heads=2",
        "model.intermediate_size=64", "model.max_position=64"]


def cli(*args: str) -> None:
    code = main(list(args))
    assert code == 0, f"plmkit {' '.join(args)} exited {code}"


def build_classifier(root: Path) -> dict[str, Path]:
    """A two-label sentiment classifier of the demo's reviews, and its dev file."""
    files = build_demo_data(root / "data", n_train=600, n_dev=300, n_test=10)
    corpus = root / "corpus.txt"
    corpus.write_text(files.unlabelled.read_text(encoding="utf-8")[:100_000], encoding="utf-8")
    cli("tokenizer", f"inputs={corpus}", f"output={root / 'tok'}", "vocab_size=1500")
    cli("finetune", f"tokenizer={root / 'tok'}", f"train_file={files.train}",
        f"dev_file={files.dev}", f"output={root / 'cls'}", "max_length=64", *TINY,
        "train.max_steps=60", "train.batch_size=16", "train.lr=2e-3", "train.threads=1")
    return {"cls": root / "cls", "dev": files.dev}


@contextmanager
def serving(model: Path, *settings: str, timeout: float = 90.0) -> Iterator[str]:
    """`plmkit serve model=… port=0` in a subprocess on loopback; yields its base URL."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "plmkit", "serve", f"model={model}", "port=0",
                             "host=127.0.0.1", "threads=1", *settings],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()  # "plmkit serve: … at http://127.0.0.1:PORT/"
        assert " at http://127.0.0.1:" in line, (line, proc.stderr.read() if proc.poll() else "")
        url = line.rsplit(" at ", 1)[1].strip().rstrip("/")
        deadline = time.monotonic() + timeout
        while True:  # uvicorn accepts once its startup (the batcher) has run
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "the server did not start"
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
