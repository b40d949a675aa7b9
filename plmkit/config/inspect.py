"""`plmkit inspect`'s settings (re-exported by plmkit.config)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class InspectConfig:
    """`plmkit inspect`: which fine-tuned encoder and input to look inside, and what to draw."""

    model: str = "runs/finetune"  # fine-tuned run or Hugging Face directory (classifier, tagger, QA reader, embedder)
    text: str | None = None  # the text to inspect (QA: the question)
    pair: str | None = None  # the second sentence of a pair (QA: the context)
    what: str = "both"  # attention | attributions (classifiers only) | both
    layer: int = -1  # the layer whose attention map is drawn (0-based; -1 = the last)
    head: int = -1  # the head drawn (0-based; -1 = the mean over heads)
    method: str = "integrated_gradients"  # attributions: integrated_gradients | grad_x_input
    target: str | None = None  # the label attributed (name or index; default: the predicted label)
    steps: int = 50  # integrated gradients: Gauss-Legendre steps along the path
    top: int = 10  # attributed tokens printed, highest |score| first
    output: str = "inspect"  # directory for attention.png, attributions.png and inspect.json
    overwrite: bool = False  # replace an earlier inspect output in the same directory
