"""`plmkit probe KIND`: one probe of a trained model (bias, robustness, memorization), its table.

The kind names both the section of ProbeConfig holding its settings (config/probes.py) and the
module plmkit/probes/<kind>.py whose `run(section)` does the work, so a new probe is one
section field and one module, with no table to keep here.
"""

from __future__ import annotations

import importlib
from typing import Any

from plmkit.config import ProbeConfig
from plmkit.config.probes import probe_kinds
from plmkit.runtime.errors import UserError


def run(cfg: ProbeConfig) -> Any:
    """Run the probe `cfg.kind` with its section of `cfg`; returns what that probe returns."""
    kinds = probe_kinds()
    if cfg.kind not in kinds:
        given = f"got '{cfg.kind}'" if cfg.kind else "none given"
        raise UserError(f"probe: kind must be one of {', '.join(kinds)} ({given}); "
                        f"e.g. plmkit probe {kinds[0]} model=DIR file=FILE")
    return importlib.import_module(f"plmkit.probes.{cfg.kind}").run(getattr(cfg, cfg.kind))
