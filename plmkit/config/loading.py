"""Filling the config dataclasses: plain data from YAML recipes and `key=value` overrides,
coerced field by field, strictly (an unknown key or a wrong type names the dotted field).

Command-line values stay text (`Typed`) until the field they fill is known, so a text field
takes what was typed (`context='Item #5'`) while a number or a flag is read as YAML.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from plmkit.runtime.errors import UserError

T = TypeVar("T")

def from_dict(cls: type[T], data: dict[str, Any] | None, where: str = "", base: T | None = None) -> T:
    """Fill dataclass `cls` from plain data over `base` (default: `cls()`), rejecting unknown
    keys and wrong types by name. Nested sections merge into the base's own section, so
    `train.lr=…` keeps every other default the stage chose for its `train` section."""
    base = cls() if base is None else base
    if data is None:
        return base
    if not isinstance(data, dict):
        raise UserError(f"config {where or 'root'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        raise UserError(f"config: unknown field '{key}' (known: {', '.join(sorted(names))})")
    changes = {}
    for name, value in data.items():
        key = f"{where}.{name}" if where else name
        changes[name] = _coerce(hints[name], value, key, getattr(base, name))
    return dataclasses.replace(base, **changes)


def _coerce(hint: Any, value: Any, key: str, current: Any = None) -> Any:
    origin = typing.get_origin(hint)
    takes_list = origin is list or any(typing.get_origin(a) is list for a in typing.get_args(hint))
    if isinstance(value, Repeated) and not takes_list:
        value = value[-1]  # a scalar given twice: the last one wins
    if isinstance(value, Typed):
        value = _read_typed(hint, value)
    if hint is Any or origin is dict:  # settings whose types come later (a suite's defaults)
        return _untyped(value)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        inner = [o for o in options if o is not type(None)]
        return _coerce(inner[0], value, key, current)
    if dataclasses.is_dataclass(hint):
        section_base = current if dataclasses.is_dataclass(current) else None
        return from_dict(hint, value, key, section_base)
    if origin is list:
        (item,) = typing.get_args(hint)
        if isinstance(value, (str, int, float, bool)):
            value = [value]
        if not isinstance(value, list):
            raise UserError(f"config {key}: expected a list, got {value!r}")
        return [_coerce(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if hint is str and isinstance(value, (int, float, bool)):
        return str(value).lower() if isinstance(value, bool) else str(value)  # labels=[0,1], text=42
    if hint is float and isinstance(value, str) and _looks_numeric(value):
        return float(value)  # YAML 1.1 reads 3e-4 as a string
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is bool and not isinstance(value, bool):
        raise UserError(f"config {key}: expected true or false, got {value!r}")
    if hint in (int, float) and isinstance(value, bool):
        raise UserError(f"config {key}: expected a number, got {value!r}")
    if hint in (int, float, str) and not isinstance(value, hint):
        raise UserError(f"config {key}: expected {hint.__name__}, got {value!r}")
    return value


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain data for YAML: the resolved config saved with every run."""
    return dataclasses.asdict(cfg)


class Typed(str):
    """A value as typed on the command line, read once its field's type is known (`_read_typed`)."""


def _read_typed(hint: Any, raw: str) -> Any:
    """Text fields take a typed value as written (`context='Item #5'` keeps its `#5`); a list of
    texts reads YAML only for `[a, b]`; everything else is YAML (`3e-4`, `true`, `null`)."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else ()
    if type(None) in options and raw.strip() in ("null", "~"):
        return None
    target = next((o for o in options if o is not type(None)), hint)
    as_text = target is str or (
        typing.get_origin(target) is list and typing.get_args(target) == (str,)
        and not raw.lstrip().startswith("[")
    )
    if as_text or not raw.strip():  # text=" " stays a string
        return str(raw)
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return str(raw)  # not YAML (say labels='[a'): the plain string, checked by type below


def _untyped(value: Any) -> Any:
    """Plain data (YAML's reading) for command-line values under a field of no fixed type."""
    if isinstance(value, Typed):
        return _read_typed(Any, value)
    if isinstance(value, dict):
        return {key: _untyped(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_untyped(item) for item in value]
    return value


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """Turn `["train.lr=3e-4", "model.num_layers=4"]` into nested data whose values are `Typed`,
    read by type in `from_dict`. A key given more than once collects its values (`text=a
    text=b`): see `Repeated`."""
    tree: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise UserError(f"override '{item}': expected key=value, e.g. train.lr=3e-4")
        key, raw = item.split("=", 1)
        _check_utf8(key, raw)
        value = Typed(raw)
        node = tree
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"override '{item}': '{part}' is not a section")
        leaf = parts[-1]
        if leaf in node:  # text=a text=b → [a, b] for a list field; else the last one wins
            earlier = node[leaf] if isinstance(node[leaf], Repeated) else Repeated([node[leaf]])
            node[leaf] = Repeated([*earlier, value])
        else:
            node[leaf] = value
    return tree


def _check_utf8(key: str, raw: str) -> None:
    """Bytes that are not UTF-8 reach argv as lone surrogates (Python's surrogateescape)."""
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError as err:
        byte = os.fsencode(raw[err.start])[0]
        raise UserError(f"override '{key}': not valid UTF-8 (byte 0x{byte:02x} at character "
                        f"{err.start + 1})") from None


class Repeated(list):
    """Values of a key given more than once on the command line."""


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Nested dict merge: values in `extra` win, sections merge key by key."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A recipe file as plain data; a missing or malformed file is a UserError naming it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of sections at the top level")
    return data


def load_config(cls: type[T], recipe: dict[str, Any] | None, overrides: list[str]) -> T:
    """Defaults ← recipe (already the verb's section) ← overrides, validated into `cls`."""
    return from_dict(cls, merge(recipe or {}, parse_overrides(overrides)))


def dump_yaml(cfg: Any) -> str:
    """The resolved config as YAML text."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True)
