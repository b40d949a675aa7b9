"""`plmkit serve`: where the server listens, how it batches, and what a request may hold
(re-exported by plmkit.config)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class ServeConfig:
    """`plmkit serve`: an HTTP server (JSON API + web page) for a fine-tuned model of any task."""

    model: str = "runs/finetune"  # a fine-tuned model directory (PyTorch or an ONNX form), a run dir, or a GPT/T5 model
    host: str = "127.0.0.1"  # listen address (0.0.0.0 exposes the server beyond this machine)
    port: int = 8000  # listen port (0 = any free port; the URL printed says which)
    max_batch: int = 32  # inputs one model call takes; 1 = no batching (each request alone)
    max_wait_ms: float = 5.0  # how long the first waiting input waits for others to join its batch
    queue_size: int = 256  # inputs waiting for the model; past this a request gets 503
    max_body_bytes: int = 1_000_000  # larger request bodies get 413 before they are parsed
    max_text_chars: int = 10_000  # longer text fields get 413
    max_items: int = 64  # inputs one request may hold ({"inputs": [...]})
    max_new_tokens: int = 256  # generation: the most new tokens a request may ask for
    threads: int = 0  # torch threads for the model (0 = torch's default)
