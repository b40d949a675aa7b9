"""What a weight-name map is made of: `Row`, `Family`, their expansion to tensor names, and the
config.json helpers every family shares.

The bottom of plmkit.checkpoint: `bert.py`, `gpt2.py` and `t5.py` each describe their family
with these, and `disk.py` saves and loads through them. Nothing here knows a family.

Key choice: a map is data (rows with `{i}`/`{j}` placeholders), expanded per layer by one
function, `_expand`, which saving and loading both call, so the two directions cannot drift.
The cost is a small indirection: what a family's tensors are called is read from its rows
through `_expand`, not written out anywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from plmkit.config import ModelConfig
from plmkit.runtime.errors import UserError


class Row(NamedTuple):
    """One module of a map: `ours` ↔ `theirs` (several names are fused along dim 0).

    `{i}` in a name expands over the (encoder) layers, `{j}` over the decoder layers. "body"
    and "pooler" rows take the architecture's prefix ("bert.", "transformer.", or none); head
    rows never do. `transpose` marks weights stored as (in, out), like GPT-2's Conv1D. `vocab`
    marks a matrix with a row per token, which a model may pad (ModelConfig.vocab_multiple):
    only the first vocab_size rows are saved, and a load fills the rest with zeros.
    """

    part: str
    ours: str
    theirs: str | tuple[str, ...]
    params: tuple[str, ...]
    transpose: bool = False
    vocab: bool = False


@dataclass(frozen=True)
class Family:
    """Everything plmkit.checkpoint knows about one model family."""

    model_type: str  # config.json's model_type
    rows: tuple[Row, ...] | Callable[[ModelConfig], tuple[Row, ...]]  # or built from the config
    architectures: dict[str, tuple[str, tuple[str, ...]]]  # name → (body prefix, parts it holds)
    to_hf: Callable[[ModelConfig], dict[str, Any]]  # our config → config.json fields
    from_hf: Callable[[dict, str], ModelConfig]  # config.json data, its path → our config
    bare: tuple[type, str] | None = None  # (body-only class, the name prefix it lacks)
    buffers: tuple[str, ...] = ()  # tensors some files hold that carry nothing (before prefix;
    # `{i}` expands over the layers)
    optional_parts: frozenset[str] = frozenset()  # parts saved only when the model has them
    fixup: Callable[[dict, dict, dict, str, Path], None] | None = None  # quirks, after mapping
    layer_counts: Callable[[ModelConfig], dict[str, int]] = field(
        default=lambda cfg: {"i": cfg.num_layers}
    )  # how far `{i}` (and `{j}`) expand
    holds: str | None = None  # ModelConfig.family of its models when the map is not that
    # family's own (ELECTRA's files hold "bert" encoders); None: the family it is registered as


_W, _WB = ("weight",), ("weight", "bias")


def _expand(
    family: Family, cfg: ModelConfig, prefix: str
) -> list[tuple[Row, str, tuple[str, ...]]]:
    """The family's rows expanded to tensors: (row, our name, Transformers names with prefix)."""
    counts = family.layer_counts(cfg)
    rows = family.rows(cfg) if callable(family.rows) else family.rows
    out = []
    for row in rows:
        names = (row.theirs,) if isinstance(row.theirs, str) else row.theirs
        pre = prefix if row.part in ("body", "pooler") else ""
        index = "j" if "{j}" in row.ours else "i" if "{i}" in row.ours else None
        for n in range(counts.get(index, 0)) if index else (None,):
            for p in row.params:
                ours = f"{row.ours.format(**{index: n}) if index else row.ours}.{p}"
                hf = tuple(
                    f"{pre}{(name.format(**{index: n}) if index else name)}.{p}" for name in names
                )
                out.append((row, ours, hf))
    return out


ACT_TO_HF = {"gelu": "gelu", "gelu_tanh": "gelu_pytorch_tanh", "relu": "relu"}
ACT_FROM_HF = {
    "gelu": "gelu",
    "gelu_python": "gelu",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_new": "gelu_tanh",
    "relu": "relu",
}


def hf_activation(name: str) -> str:
    """Our activation name → Transformers' (hidden_act / activation_function)."""
    if name not in ACT_TO_HF:
        raise UserError(f"model.activation '{name}': use one of {', '.join(ACT_TO_HF)}")
    return ACT_TO_HF[name]


def activation_from_hf(act: Any, source: str, key: str = "activation") -> str:
    """Transformers' activation name → ours; an unsupported one is a UserError naming the field."""
    if not isinstance(act, str) or act not in ACT_FROM_HF:
        raise UserError(f"{source}: {key} {act!r} is not supported ({', '.join(ACT_FROM_HF)})")
    return ACT_FROM_HF[act]


def read_fields(
    data: dict, fields: tuple[tuple[str, str, Any], ...], source: str
) -> dict[str, Any]:
    """Our config values from config.json `data` by (ours, theirs, default), type-checked."""
    values: dict[str, Any] = {}
    for ours, theirs, default in fields:
        value = data.get(theirs, default)
        if theirs == "pad_token_id" and value is None:
            value = 0
        kind = type(default)
        types = (int, float) if kind is float else (kind,)
        if (
            isinstance(value, bool) != (kind is bool)
            or not isinstance(value, types)
            or (kind is not bool and value < 0)
        ):
            raise UserError(
                f"{source}: field '{theirs}' must be a non-negative {kind.__name__}, got {value!r}"
            )
        values[ours] = kind(value)
    return values


def check_heads(cfg: ModelConfig, source: str) -> None:
    """Attention heads must divide the width (when the family derives head size from it)."""
    if cfg.num_heads == 0 or cfg.hidden_size % cfg.num_heads:
        raise UserError(
            f"{source}: hidden_size {cfg.hidden_size} is not a multiple of num_heads {cfg.num_heads}"
        )
