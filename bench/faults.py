"""The fault campaign (issue 14): kill, stop and break tiny pretraining and fine-tuning runs at
random moments, resume them, and compare the final weights bit for bit with uninterrupted runs.

    python bench/faults.py [--kills 20] [--sigterms 5] [--seed 0] [--work DIR]

Faults are injected from inside the run by this same script in `--child` mode, which patches a
few functions and then calls `plmkit.cli.main`; the moment is drawn uniformly over the calls the
uninterrupted run made (counted in a first `--child count` pass):

- kill -9 inside a step: SIGKILL at a random module call made with gradients on;
- kill -9 during evaluation: at a random module call made with gradients off (held-out scoring);
- kill -9 during a checkpoint write: at a random fsync / rename / mkdir / open inside
  `save_checkpoint`;
- SIGTERM inside a random step: the run must save that step, print one line and exit 143;
- ENOSPC / EIO from the first fsync of the second checkpoint: one line, the first one intact;
- two runs started together on one output; a torn newest checkpoint before resume.

Files lost counts input files (corpus, tokenizer, shards, labelled data) whose SHA-256 changed
or vanished plus temporary directories left behind. Prints one Markdown table and exits.
"""

from __future__ import annotations

import argparse
import builtins
import errno
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = ["train.threads=1", "train.save_every=5"]
PRETRAIN = ["model.hidden_size=32", "model.num_heads=2", "model.intermediate_size=64",
            "model.num_layers=2", "objective.seq_len=32", "train.batch_size=8", "train.max_steps=30",
            "train.eval_every=10"]
FINETUNE = ["train.max_steps=30", "train.batch_size=8", "max_length=32"]


# ----------------------------------------------------------------------------- the child


def child(mode: str, target: int, argv: list[str]) -> int:
    """Run `plmkit argv` with counters on; in a fault mode act at call number `target`."""
    import torch

    from plmkit.cli import main
    from plmkit.train import state, trainer

    counts = {"step": 0, "eval": 0, "write": 0, "steps_done": 0}
    in_save = [False]

    def hit(kind: str, what: str) -> None:
        counts[kind] += 1
        if mode == f"kill-{kind}" and counts[kind] == target:
            print(f"fault: SIGKILL during {kind} call {target} ({what}), step "
                  f"{counts['steps_done'] + 1}", file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        if mode == "sigterm" and kind == "step" and counts[kind] == target:
            print(f"fault: SIGTERM in step {counts['steps_done'] + 1}", file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGTERM)

    module_call = torch.nn.Module.__call__

    def counted_call(self, *args, **kwargs):
        hit("step" if torch.is_grad_enabled() else "eval", type(self).__name__)
        return module_call(self, *args, **kwargs)

    torch.nn.Module.__call__ = counted_call
    step = torch.optim.Optimizer.zero_grad

    def counted_zero_grad(self, *args, **kwargs):  # the loop zeroes right after each step
        counts["steps_done"] += 1
        return step(self, *args, **kwargs)

    torch.optim.Optimizer.zero_grad = counted_zero_grad
    real = {name: getattr(os, name) for name in ("fsync", "replace", "mkdir")}
    real_open = builtins.open

    def during_save(name: str, fn):
        def wrapped(*args, **kwargs):
            if in_save[0]:
                hit("write", f"{name} {str(args[0])[-60:] if args else ''}")
                if name == "fsync" and mode in ("enospc", "eio") and counts["write"] >= target:
                    code = errno.ENOSPC if mode == "enospc" else errno.EIO
                    raise OSError(code, os.strerror(code))
            return fn(*args, **kwargs)
        return wrapped

    for name, fn in real.items():
        setattr(os, name, during_save(name, fn))
    builtins.open = during_save("open", real_open)
    save = state.save_checkpoint

    def counted_save(*args, **kwargs):
        in_save[0] = True
        try:
            return save(*args, **kwargs)
        finally:
            in_save[0] = False

    trainer.state.save_checkpoint = counted_save
    if mode in ("enospc", "eio"):
        target = 10**9  # armed when the second checkpoint starts (below)
        first = [True]

        def second_save(*args, **kwargs):
            nonlocal target
            if not first[0]:
                target = counts["write"] + 1
            first[0] = False
            return counted_save(*args, **kwargs)

        trainer.state.save_checkpoint = second_save
    try:
        code = main(argv)
    finally:
        if mode == "count":
            print("counts " + json.dumps(counts), file=sys.stderr, flush=True)
    return code


# ----------------------------------------------------------------------------- the parent


def plmkit(mode: str, target: int, argv: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, __file__, "--child", mode, str(target), "--", *argv],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)


def checksums(*roots: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for root in roots for p in sorted(root.rglob("*")) if p.is_file()}


def weights(run: Path) -> dict:
    from safetensors.torch import load_file
    return load_file(run / "final" / "model.safetensors")


def same(run: Path, ref: dict) -> bool:
    """Whether the run's final weights equal `ref` bit for bit (False when it has none)."""
    import torch
    try:
        got = weights(run)
    except OSError:
        return False
    return got.keys() == ref.keys() and all(torch.equal(got[k], ref[k]) for k in got)


def debris(run: Path) -> list[Path]:
    """Temporary directories and stale lock copies left in or beside a run."""
    inside = [p for p in run.rglob("*") if p.name.endswith(".tmp") or ".stale-" in p.name]
    return inside + list(run.parent.glob(f".{run.name}.*"))


def setup(work: Path, env: dict) -> tuple[list[Path], list[str], list[str]]:
    """Corpus, tokenizer, shards, labelled files; the argv of both run kinds (output added later)."""
    words = "river stone light cloud paper music garden window forest letter".split()
    rng = random.Random(0)
    corpus = work / "corpus"
    corpus.mkdir()
    (corpus / "text.txt").write_text("".join(
        " ".join(rng.choice(words) for _ in range(rng.randint(6, 14))) + ".\n"
        + ("\n" if i % 4 == 3 else "") for i in range(800)))
    data = work / "labelled"
    data.mkdir()
    for name, n in (("train.tsv", 120), ("dev.tsv", 40)):
        rows = [(" ".join(rng.choice(words) for _ in range(8)), rng.randint(0, 1)) for _ in range(n)]
        (data / name).write_text("text\tlabel\n" + "".join(
            f"{t} {'good' if y else 'bad'}\t{y}\n" for t, y in rows))
    for argv in (["tokenizer", f"inputs={corpus}", f"output={work / 'tok'}", "vocab_size=200"],
                 ["prepare", f"inputs={corpus}", f"tokenizer={work / 'tok'}",
                  f"output={work / 'shards'}", "workers=1"]):
        done = subprocess.run([sys.executable, "-m", "plmkit", *argv], capture_output=True,
                              text=True, env=env, cwd=ROOT)
        assert done.returncode == 0, done.stderr
    pretrain = ["pretrain", f"shards={work / 'shards'}", *TINY, *PRETRAIN]
    finetune = ["finetune", f"init={work / 'reference-pretrain'}", f"train_file={data / 'train.tsv'}",
                f"dev_file={data / 'dev.tsv'}", *TINY, *FINETUNE]
    return [corpus, work / "tok", work / "shards", data], pretrain, finetune


def campaign(args: argparse.Namespace) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "0"}
    work = Path(args.work or tempfile.mkdtemp(prefix="plmkit-faults-"))
    work.mkdir(parents=True, exist_ok=True)
    inputs, pretrain, finetune = setup(work, env)
    rng = random.Random(args.seed)
    rows = []
    for kind, base in (("pretrain", pretrain), ("finetune", finetune)):
        reference = work / f"reference-{kind}"
        done = plmkit("count", 0, [*base, f"output={reference}"], env)
        assert done.returncode == 0, done.stderr
        counts = json.loads(done.stderr.rsplit("counts ", 1)[1])
        if kind == "finetune":
            inputs.append(work / "reference-pretrain")
        before = checksums(*inputs)
        ref = weights(reference)
        share = {"step": args.kills - 2 * (args.kills // 3), "eval": args.kills // 3,
                 "write": args.kills // 3}
        for fault, tries in share.items():
            exact, lost, notes = 0, 0, []
            for k in range(tries):
                run = work / f"{kind}-{fault}-{k}"
                target = rng.randint(1, counts[fault])
                cut = plmkit(f"kill-{fault}", target, [*base, f"output={run}"], env)
                if cut.returncode != -signal.SIGKILL:
                    notes.append(f"try {k}: rc {cut.returncode}")
                resumed = plmkit("run", 0, [*base, f"output={run}", "resume=true"], env)
                ok = resumed.returncode == 0 and same(run, ref)
                exact += ok
                lost += len(debris(run))
                if not ok:
                    notes.append(f"try {k}: {resumed.stderr.strip().splitlines()[-1:]}")
            lost += sum(v != before.get(p) for p, v in checksums(*inputs).items()) + len(
                set(before) - set(checksums(*inputs)))
            rows.append({"fault": f"kill -9 {kind}, {WHERE[fault]}", "tries": tries,
                         "resumed exactly": exact, "files lost": lost,
                         "notes": "; ".join(notes) or "—"})
        if kind == "pretrain":
            rows.append(sigterms(work, base, counts, ref, rng, args.sigterms, env))
            rows.extend(disk_errors(work, base, env))
            rows.append(concurrent(work, base, ref, env))
            rows.append(torn(work, base, counts, ref, env))
    return rows


WHERE = {"step": "inside a step", "eval": "during evaluation", "write": "during a checkpoint write"}


def sigterms(work: Path, base: list[str], counts: dict, ref: dict, rng: random.Random,
             tries: int, env: dict) -> dict:
    exact, saved, notes = 0, 0, []
    for k in range(tries):
        run = work / f"sigterm-{k}"
        cut = plmkit("sigterm", rng.randint(1, int(counts["step"] * 0.9)), [*base, f"output={run}"], env)
        arrived = int(cut.stderr.split("SIGTERM in step ")[1].split()[0])
        from plmkit.train.state import list_checkpoints
        newest = list_checkpoints(run)[-1][0] if list_checkpoints(run) else None
        line = f"stopped at step {arrived}; resume=true continues" in cut.stdout
        saved += cut.returncode == 143 and newest == arrived and line
        if not (cut.returncode == 143 and newest == arrived and line):
            notes.append(f"try {k}: rc {cut.returncode}, arrived {arrived}, newest {newest}")
        resumed = plmkit("run", 0, [*base, f"output={run}", "resume=true"], env)
        exact += resumed.returncode == 0 and same(run, ref)
    return {"fault": "SIGTERM pretrain, inside a step", "tries": tries, "resumed exactly": exact,
            "files lost": len(debris(work / "sigterm-0")),
            "notes": f"{saved}/{tries} saved the step it arrived in, exit 143, one line"
            + ("; " + "; ".join(notes) if notes else "")}


def disk_errors(work: Path, base: list[str], env: dict) -> list[dict]:
    from plmkit.train.state import list_checkpoints, verify_checkpoint
    rows = []
    for mode in ("enospc", "eio"):
        run = work / mode
        cut = plmkit(mode, 0, [*base, f"output={run}"], env)
        # the progress bar shares stderr; what plmkit says is its own lines
        lines = [line for line in cut.stderr.splitlines() if line.startswith("plmkit ")]
        kept = list_checkpoints(run)
        intact = len(kept) == 1 and verify_checkpoint(kept[0][1]) is None
        one = (len(lines) == 1 and "step-10: cannot write checkpoint" in lines[0]
               and "Traceback" not in cut.stderr)
        rows.append({"fault": f"{mode.upper()} in the checkpoint writer", "tries": 1,
                     "resumed exactly": "—", "files lost": len(debris(run)),
                     "notes": f"rc {cut.returncode}; {'one line' if one else 'NOT one line'}: "
                     f"`{lines[-1].split('error: ')[-1].replace(str(work), '…') if lines else ''}`; step-5 "
                     f"{'intact' if intact else 'NOT intact'}"})
    return rows


def concurrent(work: Path, base: list[str], ref: dict, env: dict) -> dict:
    run = work / "together"
    argv = [sys.executable, "-m", "plmkit", *base, f"output={run}"]
    both = [subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    out = [(p.wait(), p.stderr.read()) for p in both]
    codes = sorted(c for c, _ in out)
    refused = [e.strip().splitlines()[-1] for c, e in out if c == 2]
    ok = codes == [0, 2] and same(run, ref)
    return {"fault": "two pretraining runs on one output", "tries": 1,
            "resumed exactly": int(ok), "files lost": len(debris(run)),
            "notes": f"exits {codes}; refused: `{refused[0].split('error: ')[-1].replace(str(work), '…') if refused else ''}`"}


def torn(work: Path, base: list[str], counts: dict, ref: dict, env: dict) -> dict:
    from plmkit.train.state import list_checkpoints
    run = work / "torn"
    plmkit("kill-step", int(counts["step"] * 0.8), [*base, f"output={run}"], env)
    newest = list_checkpoints(run)[-1][1]  # killed in step ~24: step-15 and step-20 kept
    blob = newest / "model.safetensors"
    blob.write_bytes(blob.read_bytes()[: blob.stat().st_size // 2])
    resumed = plmkit("run", 0, [*base, f"output={run}", "resume=true"], env)
    warned = "is damaged" in resumed.stdout
    ok = resumed.returncode == 0 and same(run, ref)
    return {"fault": "torn newest checkpoint, then resume", "tries": 1, "resumed exactly": int(ok),
            "files lost": len(debris(run)),
            "notes": ("warned, fell back to the one before" if warned else "NO warning")}


def table(rows: list[dict]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "|".join("---" for _ in keys) + "|"]
    return "\n".join([*lines, *("| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20, help="kill -9 moments per run kind")
    parser.add_argument("--sigterms", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0, help="draws the moments")
    parser.add_argument("--work", help="working folder (default: a new temporary one)")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "TARGET"), help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.child:
        sys.exit(child(args.child[0], int(args.child[1]), rest[1:] if rest[:1] == ["--"] else rest))
    started = time.time()
    print(table(campaign(args)))
    print(f"\n{time.time() - started:.0f} s, seed {args.seed}, torch threads 1")


if __name__ == "__main__":
    main()
