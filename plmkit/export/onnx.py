"""A fine-tuned PyTorch network → model.onnx, checked against the network on real inputs.

The graph takes the encoder inputs (input_ids, attention_mask, token_type_ids: int64, dynamic
batch and sequence axes) and returns what the family's network returns (logits for a
classifier). Choices, measured for this project on torch 2.13 / ONNX Runtime 1.32 (CPU):
- the dynamo exporter at opset 20: attention is decomposed into plain ops and ONNX Runtime
  matches PyTorch within 1e-7; from opset 23 it emits an `Attention` op that the CPU provider
  rejected with a (B, 1, 1, T) mask;
- the padded attention path is exported (the unpadded one gathers a data-dependent number of
  tokens); the check compares against the network as plmkit runs it, unpadded;
- example inputs need every dynamic axis above 1 ("Constraints violated" otherwise), so the
  example batch is at least 2 × 2.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from plmkit.models.encoder import Encoder
from plmkit.runtime.errors import UserError
from plmkit.serve.onnx_predictor import OnnxSession
from plmkit.tasks.arrays import INPUT_KEYS

OPSET = 20
TOLERANCE = 1e-4  # max abs difference from the PyTorch network past which export fails


def export_network(model: nn.Module, outputs: tuple[str, ...], file: Path,
                   example: dict[str, np.ndarray]) -> None:
    """Write `model` (eval mode, padded attention) to `file` with dynamic batch and sequence."""
    example = _at_least_two_by_two(example)
    batch = torch.export.Dim("batch", min=1, max=4096)
    sequence = torch.export.Dim("sequence", min=1, max=_max_position(model))
    shapes = {key: {0: batch, 1: sequence} for key in INPUT_KEYS}
    args = tuple(torch.from_numpy(example[key]) for key in INPUT_KEYS)
    with _padded(model), _quiet():
        program = torch.onnx.export(model, args, dynamic_shapes=shapes, input_names=list(INPUT_KEYS),
                                    output_names=list(outputs), opset_version=OPSET, dynamo=True)
        program.save(str(file))


def max_difference(model: nn.Module, session: OnnxSession,
                   batches: list[dict[str, np.ndarray]]) -> float:
    """Largest absolute difference between the network's outputs and the session's."""
    worst = 0.0
    model.eval()
    with torch.inference_mode():
        for feeds in batches:
            ours = model(*(torch.from_numpy(feeds[key]) for key in INPUT_KEYS))
            ours = ours if isinstance(ours, tuple) else (ours,)
            for a, b in zip(ours, session(feeds), strict=True):
                worst = max(worst, float(np.abs(a.float().numpy() - b).max()))
    return worst


class OnnxModule(nn.Module):
    """An ONNX session called like the PyTorch network, so a family's own `score` evaluates an
    exported form exactly as it evaluates the fine-tuned model."""

    def __init__(self, session: OnnxSession) -> None:
        super().__init__()
        self.session = session

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        feeds = {key: t.cpu().numpy().astype(np.int64)
                 for key, t in zip(INPUT_KEYS, (input_ids, attention_mask, token_type_ids), strict=True)}
        out = tuple(torch.from_numpy(o) for o in self.session(feeds))
        return out[0] if len(out) == 1 else out


def check_exported(model: nn.Module, file: Path, batches: list[dict[str, np.ndarray]]) -> float:
    """The max abs difference of `file` from `model` on `batches`; past TOLERANCE, a UserError."""
    worst = max_difference(model, OnnxSession(file), batches)
    if not worst <= TOLERANCE:
        raise UserError(f"export: the ONNX graph differs from the PyTorch model by {worst:.2e} "
                        f"(more than {TOLERANCE:.0e}) on the check inputs; nothing was written")
    return worst


def head_parameters(model: nn.Module) -> list[str]:
    """Names of the parameters outside the encoder: the task head, kept fp32 by int8."""
    return [name for name, _ in model.named_parameters() if not name.startswith("encoder.")]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter's progress lines, its notes on optional packages and its warnings about axis
    names are not the user's business; errors still raise."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _padded(model: nn.Module) -> Iterator[None]:
    encoders = [m for m in model.modules() if isinstance(m, Encoder)]
    saved = [e.unpad for e in encoders]
    for e in encoders:
        e.unpad = False
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        for e, flag in zip(encoders, saved, strict=True):
            e.unpad = flag
        model.train(was_training)


def _at_least_two_by_two(example: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    ids = example["input_ids"]
    reps = (2 if ids.shape[0] < 2 else 1, 2 if ids.shape[1] < 2 else 1)
    if reps == (1, 1):
        return example
    return {key: np.tile(value, reps) for key, value in example.items()}


def _max_position(model: nn.Module) -> int:
    encoder = next((m for m in model.modules() if isinstance(m, Encoder)), None)
    if encoder is None:
        raise UserError("export: ONNX export covers encoder models (BERT family) only")
    return encoder.embeddings.position.num_embeddings
