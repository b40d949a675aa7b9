"""The family registry, and saving and loading models as Hugging Face directories.

The top of plmkit.checkpoint: it knows every family (`FAMILIES`, `ARCHITECTURES`) and writes or
reads config.json, model.safetensors (also sharded safetensors and legacy pytorch_model.bin)
and the tokenizer files. Stages call `save_model`, `read_checkpoint` and `load_into`.

Key choice: loading is two steps: `read_checkpoint` maps a file's tensors to our names without
building a model, and `load_into` copies them into whatever model a stage built, leaving heads
the file lacks (or holds for another label set) at their initial values. The cost is that a
missing head is no error unless the caller asks (`require_heads`): it comes back by name.
Writes go through `atomic_dir`, so a failed save leaves no half-written directory, and a save
replaces only a directory plmkit marked as its own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from plmkit.checkpoint.bert import BERT
from plmkit.checkpoint.electra import ELECTRA
from plmkit.checkpoint.family import Family, _expand
from plmkit.checkpoint.gpt2 import GPT2
from plmkit.checkpoint.t5 import T5
from plmkit.config import ModelConfig
from plmkit.runtime.errors import UserError
from plmkit.runtime.files import atomic_dir
from plmkit.text.tokenizer import copy_tokenizer_files

FAMILIES: dict[str, Family] = {"bert": BERT, "gpt": GPT2, "t5": T5}  # ModelConfig.family → Family
MAPS: tuple[Family, ...] = (*FAMILIES.values(), ELECTRA)  # every map; ELECTRA's holds bert models
ARCHITECTURES: dict[str, Family] = {
    name: family for family in MAPS for name in family.architectures
}
MODEL_TYPES: dict[str, Family] = {family.model_type: family for family in MAPS}


def holds(family: Family) -> str:
    """The ModelConfig.family of the models that `family`'s files hold."""
    return family.holds or next(name for name, known in FAMILIES.items() if known is family)


def file_family(hf_config: dict) -> Family:
    """The map a config.json's files are read with, by model_type (BERT when it has none)."""
    return MODEL_TYPES[hf_config.get("model_type", "bert")]


def family_of(architecture: str) -> Family:
    """The family that writes `architecture`; an unknown name is a UserError listing the known."""
    if architecture not in ARCHITECTURES:
        raise UserError(f"architecture '{architecture}': use one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[architecture]


def config_to_hf(cfg: ModelConfig, architecture: str, extra: dict | None = None) -> dict:
    """config.json data for `architecture`; `extra` keys are added last."""
    family = family_of(architecture)
    if holds(family) != cfg.family:
        raise UserError(f"architecture {architecture} cannot hold a model of family '{cfg.family}'")
    data: dict[str, Any] = {"architectures": [architecture], "model_type": family.model_type}
    data.update(family.to_hf(cfg))
    data.update(extra or {})
    return data


def config_from_hf(data: dict, source: str) -> ModelConfig:
    """ModelConfig from a config.json's data; unsupported settings are a UserError naming `source`."""
    model_type = data.get("model_type", "bert")
    if model_type not in MODEL_TYPES:
        raise UserError(
            f"{source}: model_type '{model_type}' is not supported ({', '.join(MODEL_TYPES)})"
        )
    return MODEL_TYPES[model_type].from_hf(data, source)


# ----------------------------------------------------------------------------- saving


def _our_state(model: nn.Module, family: Family) -> dict[str, torch.Tensor]:
    """The model's tensors under our full names (a bare body gains its prefix)."""
    prefix = family.bare[1] if family.bare and isinstance(model, family.bare[0]) else ""
    return {prefix + name: t for name, t in model.state_dict().items()}


def _hf_tensors(model: nn.Module, cfg: ModelConfig, architecture: str) -> dict[str, torch.Tensor]:
    """The model's weights under Transformers' names for `architecture`, split and copied to CPU."""
    family = family_of(architecture)
    prefix, parts = family.architectures[architecture]
    state = _our_state(model, family)
    tensors = {}
    for row, ours, theirs in _expand(family, cfg, prefix):
        if row.part not in parts:
            continue
        if ours not in state:
            if row.part in family.optional_parts:
                continue
            raise UserError(f"{architecture} needs '{ours}', which {type(model).__name__} lacks")
        tensor = state[ours].detach()
        if row.vocab:
            tensor = tensor[: cfg.vocab_size]  # a padded matrix's extra rows stay behind
        pieces = tensor.chunk(len(theirs), dim=0)  # fused QKV → query, key, value
        for name, piece in zip(theirs, pieces, strict=True):
            piece = piece.T if row.transpose else piece
            tensors[name] = piece.to("cpu", copy=True).contiguous()
    return tensors


def _labels_config(model: nn.Module, extra: dict) -> dict:
    """Label names and pooling a classifier needs in config.json, unless `extra` already says."""
    out = dict(extra)
    classifier = getattr(model, "classifier", None)
    if isinstance(classifier, nn.Linear) and "id2label" not in out:
        out["id2label"] = {str(i): f"LABEL_{i}" for i in range(classifier.out_features)}
        out["label2id"] = {f"LABEL_{i}": i for i in range(classifier.out_features)}
    if isinstance(classifier, nn.Linear) and len(out["id2label"]) != classifier.out_features:
        raise UserError(
            f"id2label names {len(out['id2label'])} labels, the classifier has {classifier.out_features}"
        )
    if hasattr(model, "pooling") and "plmkit_pooling" not in out:
        out["plmkit_pooling"] = model.pooling
    return out


def save_model(
    model: nn.Module,
    cfg: ModelConfig,
    out_dir: str | Path,
    architecture: str,
    *,
    extra_config: dict | None = None,
    tokenizer_dir: str | Path | None = None,
    verb: str = "model",
) -> None:
    """Write `model` to `out_dir` as a Hugging Face `architecture` directory, atomically; `out_dir`
    is marked as `verb`'s output and replaces only an earlier one of the same verb."""
    hf_config = config_to_hf(cfg, architecture)
    tensors = _hf_tensors(model, cfg, architecture)
    extra = extra_config or {}
    if architecture.endswith(("ForSequenceClassification", "ForTokenClassification")):
        extra = _labels_config(model, extra)
    hf_config.update(extra)
    with atomic_dir(out_dir, verb=verb) as tmp:
        if tokenizer_dir is not None:
            copy_tokenizer_files(tokenizer_dir, tmp)
        (tmp / "config.json").write_text(json.dumps(hf_config, indent=2, sort_keys=True) + "\n")
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})


# ----------------------------------------------------------------------------- loading


class Checkpoint(NamedTuple):
    """A model read from disk: its config, weights under our names, and the raw config.json."""

    cfg: ModelConfig
    weights: dict[str, torch.Tensor]
    hf_config: dict
    ignored: list[str]  # tensors in the file that no part of our models uses
    path: Path  # the weights file read


def resolve_model_dir(path: str | Path) -> Path:
    """`path/final` when `path` is a run directory holding a finished model, else `path`."""
    path = Path(path)
    if (path / "final" / "config.json").is_file():
        return path / "final"
    return path


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read a plmkit export, a run directory, or any Hugging Face directory of a known family."""
    directory = resolve_model_dir(path)
    hf_config = read_hf_config(directory)
    cfg = config_from_hf(hf_config, str(directory / "config.json"))
    tensors, weights_path = _read_tensors(directory)
    weights, ignored = _to_our_names(tensors, cfg, hf_config, weights_path)
    return Checkpoint(cfg, weights, hf_config, ignored, weights_path)


def read_hf_config(path: str | Path) -> dict:
    """The config.json of a model (or run) directory as plain data, without reading weights."""
    directory = resolve_model_dir(path)
    if not directory.is_dir():
        raise UserError(f"{directory}: model directory not found")
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise UserError(f"{config_path}: not found; a model directory holds config.json")
    try:
        hf_config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{config_path}: not valid JSON ({err})") from None
    if not isinstance(hf_config, dict):
        raise UserError(f"{config_path}: expected a JSON object")
    return hf_config


def _read_tensors(directory: Path) -> tuple[dict[str, torch.Tensor], Path]:
    """All tensors of the directory's weights file(s): safetensors first, then pytorch_model.bin."""
    single = directory / "model.safetensors"
    index = directory / "model.safetensors.index.json"
    legacy = directory / "pytorch_model.bin"
    if single.is_file():
        return _load_safetensors(single), single
    if index.is_file():
        try:
            shards = sorted(
                set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
            )
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
            raise UserError(f"{index}: not a valid safetensors index (no weight_map)") from None
        tensors: dict[str, torch.Tensor] = {}
        for shard in shards:
            tensors.update(_load_safetensors(directory / shard))
        return tensors, index
    if legacy.is_file():
        try:
            state = torch.load(legacy, map_location="cpu", weights_only=True)
        except Exception as err:  # any unpickling failure means the file is unusable
            raise UserError(f"{legacy}: cannot be read as weights ({type(err).__name__})") from None
        if not isinstance(state, dict):
            raise UserError(f"{legacy}: expected a dict of tensors")
        return state, legacy
    raise UserError(f"{directory}: no model.safetensors (or pytorch_model.bin) found")


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise UserError(f"{path}: weights file not found")
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"{path}: corrupt or truncated safetensors file ({reason})") from None


def _to_our_names(
    tensors: dict[str, torch.Tensor], cfg: ModelConfig, hf_config: dict, source: Path
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Map Transformers names to ours; the body must be complete, heads are taken when present."""
    family = file_family(hf_config)
    tensors = {_modern_name(k): v for k, v in tensors.items()}
    prefixes = sorted({p for p, _ in family.architectures.values() if p}, key=len, reverse=True)
    prefix = next((p for p in prefixes if any(k.startswith(p) for k in tensors)), "")
    weights: dict[str, torch.Tensor] = {}
    layers = range(family.layer_counts(cfg).get("i", 0))
    buffers = {name.format(i=n) for name in family.buffers for n in layers} | set(family.buffers)
    used = {prefix + name for name in buffers} | buffers
    for row, ours, theirs in _expand(family, cfg, prefix):
        missing = [name for name in theirs if name not in tensors]
        if row.part == "body" and missing:
            raise UserError(
                f"{source}: tensor '{missing[0]}' is missing (config says {cfg.num_layers} layers)"
            )
        if missing:
            continue
        pieces = [tensors[name].T if row.transpose else tensors[name] for name in theirs]
        weights[ours] = pieces[0] if len(pieces) == 1 else torch.cat(pieces)  # (3H, ...) fused QKV
        used.update(theirs)
    if family.fixup is not None:
        family.fixup(tensors, weights, hf_config, prefix, source)
    return weights, sorted(set(tensors) - used)


def _modern_name(name: str) -> str:
    """Old TensorFlow-converted files call LayerNorm's weight and bias gamma and beta."""
    return name.replace("LayerNorm.gamma", "LayerNorm.weight").replace(
        "LayerNorm.beta", "LayerNorm.bias"
    )


def _part_names(family: Family, cfg: ModelConfig, parts: tuple[str, ...]) -> set[str]:
    """Our names of every tensor in `parts` of the family's map."""
    return {ours for row, ours, _ in _expand(family, cfg, "") if row.part in parts}


def _pads_to(value: torch.Tensor, param: torch.Tensor, model: nn.Module) -> bool:
    """True when `param` is `value` plus padding rows: the model's vocabulary is the file's,
    its matrix is longer (ModelConfig.vocab_multiple). Another vocabulary is still an error."""
    same_vocab = getattr(model, "vocab_size", None) == len(value)
    return same_vocab and value.shape[1:] == param.shape[1:] and len(value) < len(param)


def load_into(
    model: nn.Module,
    ckpt: Checkpoint,
    *,
    require_heads: bool = False,
    architecture: str | None = None,
) -> list[str]:
    """Copy the checkpoint's weights into `model`; return the names of parameters left at init.

    require_heads: every weight must be found (a reload of a finished model), not just the
    body's; with `architecture`, every weight that architecture holds. architecture: what
    `model` is being built as; when the file is another architecture, its task heads are not
    taken (a sentence classifier's `classifier` must not become a token classifier's, though
    the shapes may agree).
    """
    family = file_family(ckpt.hf_config)
    prefix = family.bare[1] if family.bare and isinstance(model, family.bare[0]) else ""
    body = _part_names(family, ckpt.cfg, ("body",))
    file_architecture = (ckpt.hf_config.get("architectures") or [None])[0]
    target = family_of(architecture) if architecture else None
    wanted = _part_names(target, ckpt.cfg, target.architectures[architecture][1]) \
        if target else None
    shared = _part_names(family, ckpt.cfg, ("body", "pooler", "decoder"))
    foreign = architecture is not None and file_architecture not in (None, architecture)
    vocab_rows = {ours for row, ours, _ in _expand(family, ckpt.cfg, "") if row.vocab}
    left = []
    with torch.no_grad():
        for name, param in model.named_parameters():  # a tied weight is listed once
            key = prefix + name
            value = ckpt.weights.get(key)
            if foreign and key not in shared:
                value = None  # another task's head
            if value is not None and key in vocab_rows and _pads_to(value, param, model):
                extra = value.new_zeros(len(param) - len(value), *value.shape[1:])
                value = torch.cat([value, extra])  # the padding rows: never read
            if value is not None and value.shape != param.shape:
                if key in body or require_heads:
                    raise UserError(
                        f"{ckpt.path}: '{key}' has shape {tuple(value.shape)}, the model expects {tuple(param.shape)}"
                    )
                value = None  # a head for another label set: start it fresh
            if value is None:
                left.append(name)
                continue
            param.copy_(value)
    needed = [n for n in left if prefix + n in body
              or (require_heads and (wanted is None or prefix + n in wanted))]
    if needed:
        raise UserError(f"{ckpt.path}: no weights for {', '.join(needed[:3])}")
    return left
