"""Models to and from disk in the Hugging Face layout; the one map between our weight names and theirs.

A saved model is a plain Hugging Face directory: `config.json` (a BertConfig), `model.safetensors`
with Transformers' tensor names, and the tokenizer files. Transformers loads it with
`from_pretrained` unchanged, and `read_checkpoint` reads any Hugging Face BERT directory the same
way, so importing a third-party BERT and reloading our own run are one code path. No
`transformers` import is needed: both formats are plain JSON and safetensors.

Key choice: `WEIGHT_MAP` below is declarative (a table, expanded per layer), so adding an
architecture is a new row, not new code. The cost is that our fused QKV weight must be split into
query/key/value on save and joined on load, which the table marks by listing three names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from plmkit.config import ModelConfig
from plmkit.models.encoder import Encoder
from plmkit.runtime import UserError, atomic_dir
from plmkit.text.tokenizer import copy_tokenizer_files

# ----------------------------------------------------------------------------- the weight-name map

_W, _WB = ("weight",), ("weight", "bias")
_QKV = tuple(f"encoder.layer.{{i}}.attention.self.{n}" for n in ("query", "key", "value"))

# (part, our module, Transformers module or modules fused along dim 0, parameter names).
# "body" and "pooler" names take the architecture's prefix ("bert." or none); heads never do.
# Our names are those of PretrainingModel / SequenceClassifier; a bare Encoder drops "encoder.".
# mlm.weight is the word embedding matrix (tied), so it is stored once, as the embeddings.
WEIGHT_MAP: tuple[tuple[str, str, str | tuple[str, ...], tuple[str, ...]], ...] = (
    ("body", "encoder.embeddings.word", "embeddings.word_embeddings", _W),
    ("body", "encoder.embeddings.position", "embeddings.position_embeddings", _W),
    ("body", "encoder.embeddings.token_type", "embeddings.token_type_embeddings", _W),
    ("body", "encoder.embeddings.norm", "embeddings.LayerNorm", _WB),
    ("body", "encoder.layers.{i}.attn.qkv", _QKV, _WB),
    ("body", "encoder.layers.{i}.attn.out", "encoder.layer.{i}.attention.output.dense", _WB),
    ("body", "encoder.layers.{i}.attn_norm", "encoder.layer.{i}.attention.output.LayerNorm", _WB),
    ("body", "encoder.layers.{i}.ffn.up", "encoder.layer.{i}.intermediate.dense", _WB),
    ("body", "encoder.layers.{i}.ffn.down", "encoder.layer.{i}.output.dense", _WB),
    ("body", "encoder.layers.{i}.ffn_norm", "encoder.layer.{i}.output.LayerNorm", _WB),
    ("pooler", "encoder.pooler", "pooler.dense", _WB),
    ("mlm", "mlm.dense", "cls.predictions.transform.dense", _WB),
    ("mlm", "mlm.norm", "cls.predictions.transform.LayerNorm", _WB),
    ("mlm", "mlm", "cls.predictions", ("bias",)),
    ("nsp", "nsp", "cls.seq_relationship", _WB),
    ("classifier", "classifier", "classifier", _WB),
)

# architecture → (prefix of body and pooler names, parts it holds)
ARCHITECTURES: dict[str, tuple[str, tuple[str, ...]]] = {
    "BertForPreTraining": ("bert.", ("body", "pooler", "mlm", "nsp")),
    "BertForMaskedLM": ("bert.", ("body", "mlm")),
    "BertModel": ("", ("body", "pooler")),
    "BertForSequenceClassification": ("bert.", ("body", "pooler", "classifier")),
}

# Tensors some files hold that carry nothing of their own: a position-index buffer and the tied decoder.
_POSITION_IDS = "embeddings.position_ids"
_DECODER_WEIGHT = "cls.predictions.decoder.weight"
_DECODER_BIAS = "cls.predictions.decoder.bias"


def _entries(num_layers: int, prefix: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """WEIGHT_MAP expanded to tensors: (part, our name, Transformers names with prefix)."""
    rows = []
    for part, ours, theirs, params in WEIGHT_MAP:
        names = (theirs,) if isinstance(theirs, str) else theirs
        pre = prefix if part in ("body", "pooler") else ""
        layers = range(num_layers) if "{i}" in ours else (0,)
        for i in layers:
            for p in params:
                hf = tuple(f"{pre}{n.format(i=i)}.{p}" for n in names)
                rows.append((part, f"{ours.format(i=i)}.{p}", hf))
    return rows


# ----------------------------------------------------------------------------- config.json

# (our ModelConfig field, BertConfig field, BertConfig's default when a file leaves it out)
_CONFIG_FIELDS: tuple[tuple[str, str, Any], ...] = (
    ("vocab_size", "vocab_size", 30522),
    ("hidden_size", "hidden_size", 768),
    ("num_layers", "num_hidden_layers", 12),
    ("num_heads", "num_attention_heads", 12),
    ("intermediate_size", "intermediate_size", 3072),
    ("max_position", "max_position_embeddings", 512),
    ("type_vocab_size", "type_vocab_size", 2),
    ("dropout", "hidden_dropout_prob", 0.1),
    ("attention_dropout", "attention_probs_dropout_prob", 0.1),
    ("layer_norm_eps", "layer_norm_eps", 1e-12),
    ("pad_token_id", "pad_token_id", 0),
    ("initializer_range", "initializer_range", 0.02),
)
_ACT_TO_HF = {"gelu": "gelu", "gelu_tanh": "gelu_pytorch_tanh", "relu": "relu"}
_ACT_FROM_HF = {
    "gelu": "gelu",
    "gelu_python": "gelu",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_new": "gelu_tanh",
    "relu": "relu",
}


def config_to_hf(cfg: ModelConfig, architecture: str, extra: dict | None = None) -> dict:
    """A Transformers BertConfig as plain data for config.json; `extra` keys are added last."""
    _check_architecture(architecture)
    if cfg.activation not in _ACT_TO_HF:
        raise UserError(f"model.activation '{cfg.activation}': use one of {', '.join(_ACT_TO_HF)}")
    data: dict[str, Any] = {"architectures": [architecture], "model_type": "bert"}
    data.update({theirs: getattr(cfg, ours) for ours, theirs, _ in _CONFIG_FIELDS})
    data.update(
        hidden_act=_ACT_TO_HF[cfg.activation],
        position_embedding_type="absolute",
        classifier_dropout=None,
        is_decoder=False,
        add_cross_attention=False,
        tie_word_embeddings=True,
    )
    data.update(extra or {})
    return data


def config_from_hf(data: dict, source: str) -> ModelConfig:
    """ModelConfig from a config.json's data; unsupported settings are a UserError naming `source`."""
    model_type = data.get("model_type", "bert")
    if model_type != "bert":
        raise UserError(f"{source}: model_type '{model_type}' is not supported (only bert)")
    for key, wanted in (("position_embedding_type", "absolute"), ("is_decoder", False)):
        if data.get(key, wanted) != wanted:
            raise UserError(f"{source}: {key}={data[key]!r} is not supported (only {wanted!r})")
    if data.get("add_cross_attention"):
        raise UserError(f"{source}: add_cross_attention is not supported")
    act = data.get("hidden_act", "gelu")
    if not isinstance(act, str) or act not in _ACT_FROM_HF:
        raise UserError(
            f"{source}: hidden_act {act!r} is not supported ({', '.join(_ACT_FROM_HF)})"
        )
    values: dict[str, Any] = {"activation": _ACT_FROM_HF[act]}
    for ours, theirs, default in _CONFIG_FIELDS:
        value = data.get(theirs, default)
        if theirs == "pad_token_id" and value is None:
            value = 0
        kind = type(default)
        types = (int, float) if kind is float else (int,)
        if isinstance(value, bool) or not isinstance(value, types) or value < 0:
            raise UserError(
                f"{source}: field '{theirs}' must be a non-negative {kind.__name__}, got {value!r}"
            )
        values[ours] = kind(value)
    cfg = ModelConfig(**values)
    if cfg.num_heads == 0 or cfg.hidden_size % cfg.num_heads:
        raise UserError(
            f"{source}: hidden_size {cfg.hidden_size} is not a multiple of num_attention_heads {cfg.num_heads}"
        )
    return cfg


def _check_architecture(architecture: str) -> tuple[str, tuple[str, ...]]:
    if architecture not in ARCHITECTURES:
        raise UserError(f"architecture '{architecture}': use one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[architecture]


# ----------------------------------------------------------------------------- saving



def _our_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's tensors under our full names (a bare Encoder gains "encoder.")."""
    prefix = "encoder." if isinstance(model, Encoder) else ""
    return {prefix + name: t for name, t in model.state_dict().items()}


def _hf_tensors(model: nn.Module, cfg: ModelConfig, architecture: str) -> dict[str, torch.Tensor]:
    """The model's weights under Transformers' names for `architecture`, split and copied to CPU."""
    prefix, parts = _check_architecture(architecture)
    state = _our_state(model)
    tensors = {}
    for part, ours, theirs in _entries(cfg.num_layers, prefix):
        if part not in parts:
            continue
        if ours not in state:
            raise UserError(f"{architecture} needs '{ours}', which {type(model).__name__} lacks")
        pieces = state[ours].detach().chunk(len(theirs), dim=0)  # fused QKV → query, key, value
        for name, piece in zip(theirs, pieces, strict=True):
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
) -> None:
    """Write `model` to `out_dir` as a Hugging Face `architecture` directory, atomically."""
    tensors = _hf_tensors(model, cfg, architecture)
    extra = extra_config or {}
    if architecture == "BertForSequenceClassification":
        extra = _labels_config(model, extra)
    hf_config = config_to_hf(cfg, architecture, extra)
    with atomic_dir(out_dir) as tmp:
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
    """Read a plmkit export, a run directory, or any Hugging Face BERT directory."""
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
    cfg = config_from_hf(hf_config, str(config_path))
    tensors, weights_path = _read_tensors(directory)
    weights, ignored = _to_our_names(tensors, cfg, hf_config, weights_path)
    return Checkpoint(cfg, weights, hf_config, ignored, weights_path)


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
    tensors = {_modern_name(k): v for k, v in tensors.items()}
    prefix = "bert." if any(k.startswith("bert.") for k in tensors) else ""
    architectures = hf_config.get("architectures") or ["BertForSequenceClassification"]
    skip = set() if "BertForSequenceClassification" in architectures else {"classifier"}
    weights: dict[str, torch.Tensor] = {}
    used = {prefix + _POSITION_IDS, _DECODER_WEIGHT, _DECODER_BIAS}
    for part, ours, theirs in _entries(cfg.num_layers, prefix):
        missing = [name for name in theirs if name not in tensors]
        if part == "body" and missing:
            raise UserError(
                f"{source}: tensor '{missing[0]}' is missing (config says {cfg.num_layers} layers)"
            )
        if missing or part in skip:
            continue
        pieces = [tensors[name] for name in theirs]
        weights[ours] = pieces[0] if len(pieces) == 1 else torch.cat(pieces)  # (3H, ...) fused QKV
        used.update(theirs)
    if "mlm.dense.weight" in weights and "mlm.bias" not in weights and _DECODER_BIAS in tensors:
        weights["mlm.bias"] = tensors[_DECODER_BIAS]  # old files keep the bias only on the decoder
    decoder = tensors.get(_DECODER_WEIGHT)
    if decoder is not None and not torch.equal(decoder, weights["encoder.embeddings.word.weight"]):
        raise UserError(
            f"{source}: MLM decoder differs from the word embeddings (untied: unsupported)"
        )
    return weights, sorted(set(tensors) - used)


def _modern_name(name: str) -> str:
    """Old TensorFlow-converted files call LayerNorm's weight and bias gamma and beta."""
    return name.replace("LayerNorm.gamma", "LayerNorm.weight").replace(
        "LayerNorm.beta", "LayerNorm.bias"
    )


def _is_body(name: str) -> bool:
    return name.startswith("encoder.") and not name.startswith("encoder.pooler.")


def load_into(model: nn.Module, ckpt: Checkpoint, *, require_heads: bool = False) -> list[str]:
    """Copy the checkpoint's weights into `model`; return the names of parameters left at init."""
    prefix = "encoder." if isinstance(model, Encoder) else ""
    left = []
    with torch.no_grad():
        for name, param in model.named_parameters():  # a tied weight is listed once
            key = prefix + name
            value = ckpt.weights.get(key)
            if value is not None and value.shape != param.shape:
                if _is_body(key) or require_heads:
                    raise UserError(
                        f"{ckpt.path}: '{key}' has shape {tuple(value.shape)}, the model expects {tuple(param.shape)}"
                    )
                value = None  # a head for another label set: start it fresh
            if value is None:
                left.append(name)
                continue
            param.copy_(value)
    required = [name for name in left if _is_body(prefix + name) or require_heads]
    if required:
        raise UserError(f"{ckpt.path}: no weights for {', '.join(required[:3])}")
    return left
