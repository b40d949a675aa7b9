"""Every bad input the tests feed plmkit, run through the CLI, with the one line each gets.

    PYTHONPATH=. python bench/bad_inputs.py > table.md

Collects the case tables of tests/test_bad_input.py, tests/test_bad_input_tasks.py and
tests/test_bad_input_files.py, runs each in a fresh folder, and checks what the tests check:
exit 2, one line on stderr (progress bars aside), and no file or folder changed or added
(cases that resume an existing run may write nothing new either). Prints a Markdown table
(case, verb, message with the folder shortened to …) and how many passed; exits 1 if any failed.
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
from pathlib import Path

from plmkit.cli import main
from tests import test_bad_input, test_bad_input_files, test_bad_input_tasks
from tests.test_bad_input_files import checksums


def cases() -> list[tuple[str, object]]:
    """(case id, builder(tmp) → argv) from all three tables; task cases share one Env."""
    env = test_bad_input_tasks.Env(Path(tempfile.mkdtemp(prefix="plmkit-bad-env-")))
    found = [(name, build) for name, build, *_ in test_bad_input.CASES]
    found += [(name, lambda t, b=build: b(env, t)) for name, build, _ in test_bad_input_tasks.CASES]
    found += [(name, build) for name, build, _ in test_bad_input_files.CASES]
    return found


def try_case(build: object) -> tuple[str, int, str, bool]:
    tmp = Path(tempfile.mkdtemp(prefix="plmkit-bad-"))
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        argv = build(tmp)
    before = checksums(tmp)
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(argv)
    lines = [line for line in err.getvalue().splitlines() if line.strip() and "\r" not in line]
    message = lines[-1].replace(str(tmp), "…") if lines else ""
    clean = checksums(tmp) == before
    return argv[0], code, message, code == 2 and len(lines) == 1 and clean


def main_table() -> int:
    rows, failed = [], 0
    for i, (name, build) in enumerate(cases(), 1):
        verb, code, message, ok = try_case(build)
        failed += not ok
        shown = message.replace("|", "\\|")
        rows.append(f"| {i} | {name} | {verb} | `{shown}` |" + ("" if ok else f" **FAILED (exit {code})** |"))
    print("| # | bad input | verb | the one line it gets (exit 2, nothing written) |")
    print("|--:|---|---|---|")
    print("\n".join(rows))
    print(f"\n{len(rows) - failed}/{len(rows)} refused with one line, exit 2, nothing written")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main_table())
