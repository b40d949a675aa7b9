"""Settings of `plmkit probe KIND`: one section per kind of probe (re-exported by plmkit.config).

`ProbeConfig` holds a `kind` and one section per probe; `plmkit probe bias model=M` is read as
`kind=bias bias.model=M` (`probe_arguments`), so each probe keeps its own typed settings and
`--help` lists them all. Adding a probe is one section field here, named for its module
`plmkit/probes/<kind>.py`, whose `run(section)` the stage calls. Kept in its own module because
config/__init__.py is near its size limit.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from plmkit.config.privacy import MemorizationConfig
from plmkit.config.tasks import TableConfig
from plmkit.runtime.errors import UserError


@dataclasses.dataclass
class BiasConfig:
    """`plmkit probe bias`: which sentence of each minimal pair a language model prefers."""

    model: str = ""  # a masked LM (a `plmkit pretrain` run or its final/, a BertForMaskedLM/BertForPreTraining directory) or a GPT-style causal LM
    file: str = ""  # CrowS-Pairs CSV (crows_pairs_anonymized.csv), or a CHBias folder (chbias/, or one category: chbias/gender)
    skip_identical: bool = False  # leave out (and count) pairs whose sentences tokenize the same (CHBias has 25); else such a pair is an error
    limit: int = 0  # score only the first N pairs (0 = all): a smoke run
    bootstrap: int = 1000  # resamples of the pairs for each 95% interval
    seed: int = 0  # draws the bootstrap resamples
    batch_size: int = 128  # masked copies (or sentences) per forward pass
    device: str = "auto"  # auto | cpu | cuda
    output: str | None = None  # a folder for bias.md and bias.json (the table is printed either way)


@dataclasses.dataclass
class RobustnessConfig:
    """`plmkit probe robustness`: a fine-tuned model's metric under seeded input noise."""

    model: str = ""  # a fine-tuned model of any task `plmkit evaluate` scores (run dir or model dir)
    file: str = ""  # a labelled dev file, read as the model's task reads it
    perturbations: str = "auto"  # NAME or NAME:RATE, comma-separated (see probes/perturb.py); auto: the set for the file's script (Latin or Chinese) at default rates
    seed: int = 0  # draws every perturbation (each from its own stream)
    table: TableConfig | None = None  # default: the columns the model was fine-tuned with
    limit: int = 0  # score only the first N rows (0 = all)
    batch_size: int = 64
    device: str = "auto"  # auto | cpu | cuda
    output: str | None = None  # a folder for robustness.md and robustness.json (the table is printed either way)


@dataclasses.dataclass
class ProbeConfig:
    """Run as `plmkit probe KIND key=value ...`: KIND (a section below) sets `kind`, and each
    key=value after it is that kind's setting (`plmkit probe bias model=M` = `kind=bias
    bias.model=M`). A recipe's `probe:` section names `kind` and holds the kind's section."""

    kind: str = ""  # bias | robustness | memorization: which probe runs
    bias: BiasConfig = dataclasses.field(default_factory=BiasConfig)  # plmkit probe bias
    robustness: RobustnessConfig = dataclasses.field(default_factory=RobustnessConfig)  # plmkit probe robustness
    memorization: MemorizationConfig = dataclasses.field(default_factory=MemorizationConfig)  # plmkit probe memorization (canaries planted by prepare canaries=K)


def probe_kinds() -> tuple[str, ...]:
    """The kinds `plmkit probe` runs: ProbeConfig's sections."""
    return tuple(f.name for f in dataclasses.fields(ProbeConfig) if f.name != "kind")


def probe_arguments(args: list[str]) -> list[str]:
    """`KIND [RECIPE.yaml] key=value ...` → `[RECIPE.yaml] kind=KIND KIND.key=value ...`."""
    kinds = probe_kinds()
    if not args or "=" in args[0]:
        return args
    first = args[0]
    if first not in kinds:
        if Path(first).suffix in (".yaml", ".yml") or Path(first).is_file():
            return args  # a recipe naming its kind
        raise UserError(f"probe: '{first}' is not a probe; use plmkit probe "
                        f"{'|'.join(kinds)} key=value ...")
    rest = args[1:]
    recipe = [rest.pop(0)] if rest and "=" not in rest[0] else []
    own = ("kind", *kinds)
    return [*recipe, f"kind={first}",
            *(arg if arg.split("=", 1)[0].split(".", 1)[0] in own else f"{first}.{arg}"
              for arg in rest)]
