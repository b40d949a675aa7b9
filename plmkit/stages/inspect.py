"""`plmkit inspect`: look inside a fine-tuned encoder on one input.

model + text (+ pair) → serve/inspect.py: the attention maps of every layer and head and,
for a sentence classifier, token attributions (integrated gradients or gradient × input) →
OUTPUT/attention.png (the chosen layer and head, or the mean over heads), OUTPUT/attributions.png
and OUTPUT/inspect.json (all of it, every layer and head, rounded to 6 decimals); the most
attributed tokens are printed. Inputs are checked before the model runs; the output
directory is written whole or not at all.
"""

from __future__ import annotations

import json
from typing import Any

from plmkit.config import InspectConfig
from plmkit.runtime.console import print0
from plmkit.runtime.errors import UserError
from plmkit.runtime.files import atomic_dir
from plmkit.runtime.outputs import claim_output
from plmkit.serve import heatmaps
from plmkit.serve.inspect import METHODS, attention_maps, attributions, task_model_of
from plmkit.serve.onnx_predictor import onnx_model_dir
from plmkit.serve.predictor import Predictor

WHATS = ("attention", "attributions", "both")


def _check(cfg: InspectConfig) -> None:
    if not (cfg.text or "").strip():
        raise UserError("inspect: give text= (and pair= for a sentence pair, the context for QA)")
    if cfg.what not in WHATS:
        raise UserError(f"inspect: what must be one of {', '.join(WHATS)}, got '{cfg.what}'")
    if cfg.method not in METHODS:
        raise UserError(f"inspect: method must be one of {', '.join(METHODS)}, got '{cfg.method}'")
    if cfg.steps < 1:
        raise UserError(f"inspect: steps must be at least 1, got {cfg.steps}")
    if onnx_model_dir(cfg.model) is not None:
        raise UserError(f"inspect: {cfg.model} is an ONNX form (no gradients, no attention "
                        "weights); inspect the PyTorch model it was exported from")


def _check_range(name: str, value: int, count: int, unit: str) -> int:
    """A 0-based index below `count`, or -1; `name` is the field in the message."""
    if not -1 <= value < count:
        raise UserError(f"inspect: {name}={value}: the model has {count} {unit} (0..{count - 1}, "
                        f"or -1 for {'the last' if name == 'layer' else 'their mean'})")
    return value


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def _attention_view(maps: dict, layer: int, head: int) -> tuple[list[list[float]], str]:
    """The map drawn: one head of one layer, or the mean of the layer's heads."""
    heads = maps["attentions"][layer]  # nh × T × T
    if head >= 0:
        return heads[head], f"layer {layer}, head {head}"
    mean = [[sum(h[i][j] for h in heads) / len(heads) for j in range(len(heads[0][i]))]
            for i in range(len(heads[0]))]
    return mean, f"layer {layer}, mean of {len(heads)} heads"


def _print_top(attr: dict, top: int) -> None:
    ranked = sorted(zip(attr["scores"], attr["tokens"], strict=True), key=lambda st: -abs(st[0]))
    print0(f"{attr['method']} for '{attr['target']}' ({attr['steps']} steps, completeness gap "
           f"{100 * attr['completeness_gap']:.2f}%):")
    for score, token in ranked[:top]:
        print0(f"  {score:+.4f}  {token}")


def run(cfg: InspectConfig) -> dict:
    """Inspect `cfg.text` (and `cfg.pair`); write the PNGs and inspect.json; return the data."""
    _check(cfg)
    claim_output(cfg.output, "inspect", [cfg.model], replace=cfg.overwrite)
    predictor = Predictor.load(cfg.model)
    tm = task_model_of(predictor)
    layer = _check_range("layer", cfg.layer, tm.config.num_layers, "layers")
    head = _check_range("head", cfg.head, tm.config.num_heads, "heads")
    if cfg.what != "attention" and tm.family.name != "classification":
        raise UserError(f"inspect: attributions cover sentence classifiers and regressors; "
                        f"{cfg.model} is {tm.family.description} (use what=attention)")
    value = cfg.text if cfg.pair is None else (cfg.text, cfg.pair)
    data: dict[str, Any] = {"model": str(cfg.model), "text": cfg.text, "pair": cfg.pair}
    files: dict[str, bytes] = {}
    if cfg.what != "attributions":
        maps = attention_maps(predictor, value)
        shown = layer if layer >= 0 else maps["layers"] - 1
        weights, title = _attention_view(maps, shown, head)
        files["attention.png"] = heatmaps.attention_png(maps["tokens"], weights, title)
        data["attention"] = maps
    if cfg.what != "attention":
        attr = attributions(predictor, value, cfg.method, cfg.target, cfg.steps)
        files["attributions.png"] = heatmaps.attributions_png(
            attr["tokens"], attr["scores"], f"{attr['method']}, target '{attr['target']}'")
        data["attributions"] = attr
        _print_top(attr, cfg.top)
    with atomic_dir(cfg.output, "inspect") as out:
        for name, png in files.items():
            (out / name).write_bytes(png)
        (out / "inspect.json").write_text(json.dumps(_rounded(data), ensure_ascii=False),
                                          encoding="utf-8")
    print0(f"inspect: wrote {', '.join([*files, 'inspect.json'])} to {cfg.output}")
    return data
