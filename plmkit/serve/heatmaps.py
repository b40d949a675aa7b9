"""PNG heat maps of what serve/inspect.py computes: one attention map (tokens × tokens) and a
strip of token attributions (diverging colours, red for the target, blue against it).

Matplotlib is imported inside the functions and drawn on a bare `Figure` (the Agg canvas):
no display, no pyplot state, no global backend switch in a caller's process. Token labels
need a CJK-capable font for Chinese models: the first installed font whose name says CJK
(Noto Sans CJK, ...) is put ahead of the default; without one, the default font is used
silently (Chinese characters then show as boxes). The figures are small (dpi 100) and their
size grows with the token count, so a long input stays readable at a cost in bytes.
"""

from __future__ import annotations

import contextlib
import functools
import io
from collections.abc import Iterator, Sequence

MAX_SIDE = 14.0  # inches: the longest side of a figure


@functools.cache
def _cjk_font() -> str | None:
    from matplotlib import font_manager

    names = sorted({f.name for f in font_manager.fontManager.ttflist if "CJK" in f.name},
                   key=lambda name: ("Sans" not in name, name))
    return names[0] if names else None


@contextlib.contextmanager
def _fonts() -> Iterator[None]:
    import matplotlib

    font = _cjk_font()
    family = [font, *matplotlib.rcParams["font.sans-serif"]] if font else None
    settings = {"font.sans-serif": family, "axes.unicode_minus": False} if family else {}
    with matplotlib.rc_context(settings):
        yield


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def attention_png(tokens: Sequence[str], weights: Sequence[Sequence[float]], title: str) -> bytes:
    """A T × T heat map: row = the attending token (query), column = the token attended to."""
    from matplotlib.figure import Figure

    side = min(MAX_SIDE, 2.5 + 0.28 * len(tokens))
    with _fonts():
        fig = Figure(figsize=(side + 1.0, side))
        ax = fig.subplots()
        image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0)
        ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=8)
        ax.set_yticks(range(len(tokens)), tokens, fontsize=8)
        ax.set_xlabel("attended to (key)")
        ax.set_ylabel("attending (query)")
        ax.set_title(title, fontsize=10)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        fig.tight_layout()
        return _png(fig)


def attributions_png(tokens: Sequence[str], scores: Sequence[float], title: str) -> bytes:
    """One cell per token, coloured by its score (symmetric scale around 0), value written in."""
    from matplotlib.figure import Figure

    limit = max((abs(s) for s in scores), default=0.0) or 1.0
    width = min(MAX_SIDE * 1.5, 1.5 + 0.55 * len(tokens))
    with _fonts():
        fig = Figure(figsize=(width, 1.9))
        ax = fig.subplots()
        ax.imshow([list(scores)], cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
        ax.set_xticks(range(len(tokens)), tokens, fontsize=9)
        ax.set_yticks([])
        for i, score in enumerate(scores):
            ax.text(i, 0, f"{score:.2f}", ha="center", va="center", fontsize=6,
                    color="white" if abs(score) > 0.6 * limit else "black")
        ax.set_title(title, fontsize=10)
        fig.tight_layout()
        return _png(fig)
