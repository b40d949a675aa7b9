"""`plmkit serve model=DIR`: the model behind an HTTP API and a web page, with dynamic batching.

load (serve/endpoint.py: any fine-tuned task, an ONNX form, a GPT decoder) → the Starlette app
(serve/server.py) → uvicorn on a socket bound here, so `port=0` can print the port it got.
Starlette and uvicorn (imported by serve/server.py alone) are the `serve` extra; without them
the verb says in one line how to install them.
"""

from __future__ import annotations

import socket

from plmkit.config import ServeConfig
from plmkit.runtime.errors import UserError

LIMITS = ("max_batch", "queue_size", "max_body_bytes", "max_text_chars", "max_items", "max_new_tokens")


def check(cfg: ServeConfig) -> None:
    """Every limit positive, the port a port: one line naming the field."""
    for name in LIMITS:
        if getattr(cfg, name) < 1:
            raise UserError(f"config {name}: must be ≥ 1, got {getattr(cfg, name)}")
    if cfg.max_wait_ms < 0:
        raise UserError(f"config max_wait_ms: must be ≥ 0, got {cfg.max_wait_ms}")
    if not 0 <= cfg.port <= 65535:
        raise UserError(f"config port: must be 0 to 65535, got {cfg.port}")
    if cfg.threads < 0:
        raise UserError(f"config threads: must be ≥ 0 (0 = default), got {cfg.threads}")


def run(cfg: ServeConfig) -> None:
    """Serve `cfg.model` until interrupted; prints the URL first."""
    check(cfg)
    try:
        from plmkit.serve.server import serve_forever
    except ImportError as err:
        raise UserError(f"serve: needs {err.name} (pip install 'plmkit[serve]')") from None
    from plmkit.serve.endpoint import load_endpoint

    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    endpoint = load_endpoint(cfg.model, cfg)
    sock = socket.socket(socket.AF_INET6 if ":" in cfg.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((cfg.host, cfg.port))
    except OSError as err:
        raise UserError(f"serve: cannot listen on {cfg.host}:{cfg.port} ({err.strerror})") from None
    port = sock.getsockname()[1]
    shown = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    print(f"plmkit serve: {endpoint.task} model {cfg.model} at http://{shown}:{port}/", flush=True)
    serve_forever(endpoint, cfg, sock)
