"""Looking inside a fine-tuned encoder: attention maps per layer and head, token attributions.

Attention: the fast path (`scaled_dot_product_attention`, unpadding) never materialises the
attention probabilities, and it must stay fast, so nothing is threaded through the model's
forward. Instead `attention_probabilities` runs the inspected input alone through the
encoder's own embeddings and blocks, and before each block recomputes softmax(q kᵀ · scale)
from the same fused `qkv` weights, with the same key-padding mask, in plain PyTorch. The cost
is one extra q/k projection per layer, paid by the inspected input only.

Attributions (sentence and pair classifiers, regressors): integrated gradients on the word
embeddings, the gradients of the target logit averaged along the straight path from a
baseline to the input by Gauss-Legendre quadrature (`steps` nodes) and multiplied by
(input − baseline); or gradient × input, one backward pass. The baseline puts [PAD]'s word
vector at every position except [CLS] and [SEP], which stay as they are; position and
segment embeddings are the input's. A token's score is the sum over the hidden dimension.
The word vectors are swapped in by a forward hook on the word-embedding table, so the model
runs its own forward (pooling, head) unchanged; the cost is that the steps run as a batch
of `steps` copies of the input (in chunks of CHUNK rows).

Completeness: integrated gradients' scores sum to f(input) − f(baseline); `completeness_gap`
is |Σ scores − (f(x) − f(baseline))| / |f(x) − f(baseline)|. A trained model's path can be
wiggly enough that 50 nodes miss by a few percent, so past 1% the steps are doubled (up to 8×
those asked for) and the steps used are reported: exact-enough scores at the cost of up to
8× the work on such inputs. For gradient × input the reference is f(x) − f(zero word
vectors), the first-order view, which such scores need not meet.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from plmkit.models.encoder import Encoder
from plmkit.models.heads import encoder_from
from plmkit.models.layers import Attention, padding_mask
from plmkit.runtime.errors import UserError
from plmkit.tasks.classification.schema import tokenize
from plmkit.tasks.contract import TaskModel
from plmkit.tasks.matching.embeddings import encode_texts
from plmkit.tasks.ner.features import encode_tagged
from plmkit.tasks.qa.features import encode_qa

METHODS = ("integrated_gradients", "grad_x_input")
CHUNK = 16  # interpolation steps run together in one forward/backward
TOLERANCE = 0.01  # integrated gradients: the completeness gap aimed at
REFINE = 8  # ... by doubling the steps, up to this many times the steps asked for


# ----------------------------------------------------------------------------- inputs


def _classifier_ids(tm: TaskModel, value: Any) -> tuple[np.ndarray, np.ndarray]:
    row = tm.family.parse(value, 0)
    ids, types, _ = tokenize(tm.tokenizer, [row], tm.settings.max_length)
    return ids[0], types[0]


def _tagger_ids(tm: TaskModel, value: Any) -> tuple[np.ndarray, np.ndarray]:
    ids = encode_tagged(tm.tokenizer, [tm.family.parse(value, 0)], tm.settings.max_length,
                        None).input_ids[0]  # the first window of a long sentence
    return ids, np.zeros_like(ids)


def _reader_ids(tm: TaskModel, value: Any) -> tuple[np.ndarray, np.ndarray]:
    s = tm.settings
    features = encode_qa(tm.tokenizer, [tm.family.parse(value, 0)], max_length=s.max_length,
                         stride=s.qa.stride, max_question_length=s.qa.max_question_length)
    return features.input_ids[0], features.token_type_ids[0]  # the first window


def _embedder_ids(tm: TaskModel, value: Any) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(value, str):  # each text of a pair is encoded alone: one at a time
        raise UserError("inspect: a sentence embedder encodes one text at a time; give one text")
    ids = encode_texts(tm.tokenizer, [value], tm.settings.max_length)[0]
    return ids, np.zeros_like(ids)


ENCODERS: dict[str, Callable[[TaskModel, Any], tuple[np.ndarray, np.ndarray]]] = {
    "classification": _classifier_ids,
    "ner": _tagger_ids,
    "qa": _reader_ids,
    "matching": _embedder_ids,
}


def task_model_of(predictor: Any) -> TaskModel:
    """The PyTorch task model behind `predictor`; an ONNX form or a generator is refused."""
    tm = getattr(predictor, "task_model", None)
    if not isinstance(tm, TaskModel):
        raise UserError("inspect: this is an ONNX form (no gradients, no attention weights); "
                        "inspect the PyTorch model it was exported from")
    if tm.family.name not in ENCODERS:
        raise UserError(f"inspect: {tm.path} is {tm.family.description}; inspection covers "
                        "encoder models (classifiers, taggers, QA readers, embedders)")
    return tm


def encode_value(tm: TaskModel, value: Any) -> tuple[list[str], dict[str, torch.Tensor]]:
    """The tokens of `value` and its model inputs, a batch of one row on the model's device."""
    ids, types = ENCODERS[tm.family.name](tm, value)
    ids_t = torch.as_tensor(np.asarray(ids, dtype=np.int64), device=tm.device)[None]  # (1, T)
    batch = {"input_ids": ids_t,
             "attention_mask": torch.ones_like(ids_t),
             "token_type_ids": torch.as_tensor(np.asarray(types, dtype=np.int64),
                                               device=tm.device)[None]}
    tokens = [tm.tokenizer.id_to_token(int(i)) or f"<{int(i)}>" for i in ids]
    return tokens, batch


@contextlib.contextmanager
def _evaluating(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


# ----------------------------------------------------------------------------- attention


def _explicit_attention(attn: Attention, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """softmax(q kᵀ · scale) of one self-attention layer, masked as `Attention.forward` masks:
    x (B, T, H), mask bool (B, 1, 1, T) → probabilities (B, nh, T, T)."""
    B, T, _ = x.shape
    inner = attn.num_heads * attn.head_dim
    q, k, _ = (t.view(B, T, attn.num_heads, attn.head_dim).transpose(1, 2)  # (B, nh, T, hs)
               for t in attn.qkv(x).split(inner, dim=-1))
    scale = attn.scale if attn.scale is not None else 1.0 / math.sqrt(attn.head_dim)
    scores = (q @ k.transpose(-2, -1)) * scale  # (B, nh, T, T)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1)


@torch.no_grad()
def attention_probabilities(
    encoder: Encoder,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    token_type_ids: torch.Tensor | None = None,
) -> list[torch.Tensor]:
    """Every layer's attention probabilities (B, nh, T, T), recomputed explicitly on the padded
    path; rows of padding queries are kept (they attend to the real keys, as in Transformers)."""
    x = encoder.embeddings(input_ids, token_type_ids)  # (B, T, E)
    if encoder.embeddings_project is not None:
        x = encoder.embeddings_project(x)  # (B, T, H)
    mask = padding_mask(attention_mask)  # (B, 1, 1, T) or None
    maps = []
    for layer in encoder.layers:
        maps.append(_explicit_attention(layer.attn, x, mask))
        x = layer(x, mask)
    return maps


def attention_maps(predictor: Any, value: Any) -> dict:
    """Attention weights of every layer and head for one input, as plain lists (JSON-ready)."""
    tm = task_model_of(predictor)
    tokens, batch = encode_value(tm, value)
    with _evaluating(tm.model):
        maps = attention_probabilities(encoder_from(tm.model), **batch)
    stacked = torch.stack([m[0] for m in maps]).float().cpu()  # (L, nh, T, T)
    return {"tokens": tokens, "attentions": stacked.tolist(),
            "layers": stacked.shape[0], "heads": stacked.shape[1]}


# ----------------------------------------------------------------------------- attributions


@contextlib.contextmanager
def word_vectors_replaced(encoder: Encoder, vectors: torch.Tensor) -> Iterator[None]:
    """While open, the word-embedding table's output is `vectors` (B, T, E) instead of its lookup."""
    handle = encoder.embeddings.word.register_forward_hook(lambda module, args, out: vectors)
    try:
        yield
    finally:
        handle.remove()


def _logit(tm: TaskModel, batch: dict[str, torch.Tensor], vectors: torch.Tensor,
           target: int) -> torch.Tensor:
    """The target logit (S,) of the input run with word vectors `vectors` (S, T, E)."""
    rows = vectors.shape[0]
    expanded = {key: value.expand(rows, -1) for key, value in batch.items()}
    with word_vectors_replaced(encoder_from(tm.model), vectors):
        return tm.model(expanded["input_ids"], expanded["attention_mask"],
                        expanded["token_type_ids"])[:, target]


def _gradients(tm: TaskModel, batch: dict[str, torch.Tensor], vectors: torch.Tensor,
               target: int) -> torch.Tensor:
    """d logit / d vectors for each row of vectors (S, T, E), in chunks of CHUNK rows."""
    grads = []
    for chunk in vectors.split(CHUNK):
        chunk = chunk.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(_logit(tm, batch, chunk, target).sum(), chunk)
        grads.append(grad)
    return torch.cat(grads)  # (S, T, E)


def gauss_legendre(steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes in [0, 1] and their weights (summing to 1) of a `steps`-point Gauss-Legendre rule."""
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    return (nodes + 1) / 2, weights / 2


def baseline_ids(tm: TaskModel, input_ids: torch.Tensor) -> torch.Tensor:
    """[PAD] at every position but [CLS] and [SEP], which keep their ids (1, T)."""
    pad = tm.tokenizer.token_to_id("[PAD]")
    kept = [i for i in (tm.tokenizer.token_to_id("[CLS]"), tm.tokenizer.token_to_id("[SEP]"))
            if i is not None]
    special = torch.isin(input_ids, torch.tensor(kept, device=input_ids.device))
    return torch.where(special, input_ids, torch.full_like(input_ids, 0 if pad is None else pad))


def _target_index(tm: TaskModel, target: str | int | None, logits: torch.Tensor) -> tuple[int, str]:
    """The target's index and name: a label name, a label index, or (None) the predicted label."""
    names = tm.settings.labels.names if tm.settings.labels is not None else ["score"]
    if target is None:
        index = int(logits.argmax())
    elif str(target) in names:
        index = names.index(str(target))
    elif str(target).isdigit() and int(target) < len(names):
        index = int(target)
    else:
        raise UserError(f"inspect: target '{target}' is not a label of the model "
                        f"({', '.join(names[:20])}) nor an index below {len(names)}")
    return index, names[index]


def _path_integral(tm: TaskModel, batch: dict[str, torch.Tensor], x: torch.Tensor,
                   base: torch.Tensor, target: int, steps: int) -> torch.Tensor:
    """Integrated gradients per dimension (T, E): (x − base) · ∫₀¹ ∇f(base + α(x − base)) dα."""
    alphas, weights = gauss_legendre(steps)
    a = torch.as_tensor(alphas, dtype=x.dtype, device=x.device)[:, None, None]  # (S, 1, 1)
    w = torch.as_tensor(weights, dtype=x.dtype, device=x.device)[:, None, None]
    grads = _gradients(tm, batch, base + a * (x - base), target)  # (S, T, E)
    return (x - base)[0] * (w * grads).sum(dim=0)


@torch.inference_mode(False)  # gradients, even when called from inside inference mode
@torch.enable_grad()
def attributions(
    predictor: Any,
    value: Any,
    method: str = "integrated_gradients",
    target: str | int | None = None,
    steps: int = 50,
) -> dict:
    """Per-token attributions of a classifier's (or regressor's) target logit for one input."""
    tm = task_model_of(predictor)
    if tm.family.name != "classification":
        raise UserError(f"inspect: attributions cover sentence classifiers and regressors; "
                        f"{tm.path} is {tm.family.description} (use what=attention)")
    if method not in METHODS:
        raise UserError(f"inspect: method must be one of {', '.join(METHODS)}, got '{method}'")
    if steps < 1:
        raise UserError(f"inspect: steps must be at least 1, got {steps}")
    tokens, batch = encode_value(tm, value)
    word = encoder_from(tm.model).embeddings.word
    with _evaluating(tm.model), torch.no_grad():
        x = word(batch["input_ids"])  # (1, T, E)
        if method == "integrated_gradients":
            base = word(baseline_ids(tm, batch["input_ids"]))  # (1, T, E)
        else:
            base = torch.zeros_like(x)
        logits = tm.model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])[0]
    index, name = _target_index(tm, target, logits)
    with _evaluating(tm.model):
        with torch.no_grad():
            ends = _logit(tm, batch, torch.cat([x, base]), index)  # f(x), f(baseline)
        change = float(ends[0] - ends[1])
        used = steps
        while True:
            if method == "integrated_gradients":
                per_dim = _path_integral(tm, batch, x, base, index, used)  # (T, E)
            else:
                per_dim = x[0] * _gradients(tm, batch, x, index)[0]  # (T, E)
            scores = per_dim.sum(dim=-1).float().cpu()  # (T,)
            gap = abs(float(scores.sum()) - change) / max(abs(change), 1e-12)
            if method != "integrated_gradients" or gap <= TOLERANCE or used >= REFINE * steps:
                break
            used *= 2  # a wiggly path: more nodes until the scores add up
    return {"tokens": tokens, "scores": scores.tolist(), "target": name, "target_index": index,
            "method": method, "completeness_gap": gap, "steps": used}
