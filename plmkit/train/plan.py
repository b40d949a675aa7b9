"""The step plan: how many optimizer steps a run takes, fixed once at its start.

Schedules (warm-up, decay) and curricula (BERT's short-to-long sequence switch) follow the
share of the run done. Measured by wall time that share differs between an uninterrupted run
and a resumed one, so a time-budgeted run could not resume exactly. Instead a time budget
(`max_time_s`) is turned into a number of steps once, from the time a few probe steps take,
and that plan is saved in every checkpoint: a resumed run reads it back and replays the
uninterrupted run step for step. The cost: the run ends after the planned steps, which is the
budget only as far as the probe's timing holds (a slower machine overruns, a faster one stops
early), and the probe itself (a few forward/backward passes, not counted) runs before step 1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from plmkit.config import TrainConfig

PROBE_STEPS = 3  # timed steps; the fastest one counts (the first pays for warm-up / compiling)


def step_plan(
    cfg: TrainConfig, saved: dict[str, Any] | None, time_one_step: Callable[[], float]
) -> dict[str, Any]:
    """{"steps": N, ...}: the saved plan of a time-budgeted run, else `cfg.max_steps`, else N
    from timing `PROBE_STEPS` steps with `time_one_step` (seconds per step) against the budget."""
    if saved is not None and saved.get("step_s") is not None:
        return saved  # recorded once: a resumed time-budgeted run replays the same steps
    if cfg.max_time_s <= 0:
        return {"steps": cfg.max_steps, "step_s": None}
    step_s = max(min(time_one_step() for _ in range(PROBE_STEPS)), 1e-9)
    steps = max(1, int(cfg.max_time_s / step_s))
    if cfg.max_steps > 0:
        steps = min(steps, cfg.max_steps)
    return {"steps": steps, "step_s": step_s, "max_time_s": cfg.max_time_s}
