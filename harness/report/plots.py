"""What the report's figures share: matplotlib's object API on the Agg canvas (no pyplot state, no display).

Each claim draws its own figure (``harness.claims.<claim>.figure``) with these helpers; ``png_base64`` turns one
into the string an ``<img src="data:...">`` embeds.
"""
from __future__ import annotations

import base64
import io
import math

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

PASS, FAIL, PAPER, CONTROL = "#1a7f37", "#cf222e", "#57606a", "#8c959f"


def png_base64(fig: Figure, dpi: int = 110) -> str:
    buf = io.BytesIO()
    FigureCanvasAgg(fig)
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def grid(n: int, width: float = 4.6, height: float = 3.2, ncols: int = 3):
    cols = min(n, ncols)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def band(ax, x, ci, color):
    if ci and all(c is not None for c in ci):
        ax.fill_between(x, [c[0] for c in ci], [c[1] for c in ci], color=color, alpha=0.15, lw=0)
