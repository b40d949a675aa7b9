"""Where a probe's table goes: printed always, and into `output=DIR` as NAME.md and NAME.json.

Several probes may share one folder (bias.md beside robustness.md), so the folder is claimed
as a `plmkit probe` output (it must be missing, empty, or already marked by a probe) and
each file is written atomically on its own; a rerun replaces only its own two files. The
claim is checked before any scoring (`check_report_dir`), and nothing is written until the
probe has finished (`write_report`), so a refused or failed probe leaves no trace.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from plmkit.runtime.console import print0
from plmkit.runtime.files import atomic_write_text
from plmkit.runtime.outputs import check_apart, check_replaceable, read_marker, write_marker

VERB = "probe"


def check_report_dir(output: str | None, inputs: list[str]) -> None:
    """Refuse, before any work, an output folder a probe may not write into."""
    if output:
        check_apart(output, inputs)
        check_replaceable(output, VERB, replace=True, hint="")


def write_report(output: str | None, name: str, markdown: str, data: dict[str, Any]) -> None:
    """Print `markdown`; with `output`, also write OUTPUT/NAME.md and OUTPUT/NAME.json."""
    print0(markdown, end="" if markdown.endswith("\n") else "\n")
    if not output:
        return
    folder = Path(output)
    check_replaceable(folder, VERB, replace=True, hint="")
    if read_marker(folder) is None:
        write_marker(folder, VERB)
    atomic_write_text(folder / f"{name}.md", markdown)
    atomic_write_text(folder / f"{name}.json", json.dumps(data, indent=2, ensure_ascii=False) + "\n")
