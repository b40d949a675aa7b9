"""`torch.compile` set up for plmkit's models: one graph through data-dependent sizes."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch


def compile_step(
    fn: Callable[..., Any], backend: Any = "inductor", dynamic: bool | None = None
) -> Callable[..., Any]:
    """`torch.compile(fn)` (a model, or a model's forward and loss together), with
    data-dependent sizes traced instead of splitting the graph.

    The unpadded encoder (models/unpad.py) finds its N real tokens with `nonzero`, whose output
    size depends on the data; by default Dynamo breaks the graph there, and the layers after it
    compile as separate graphs. Tracing it keeps one graph whose N is symbolic, so batches of
    any length reuse it (tests/models/test_compile.py counts the graphs). The setting applies
    to this function's calls only: other compiled code in the process keeps Dynamo's defaults.
    `dynamic` is torch.compile's (True: every size symbolic from the start).
    """
    compiled = torch.compile(fn, backend=backend, dynamic=dynamic)

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        with torch._dynamo.config.patch(
            capture_dynamic_output_shape_ops=True, capture_scalar_outputs=True
        ):
            return compiled(*args, **kwargs)

    return call
