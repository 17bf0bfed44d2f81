"""The report's figures, drawn with matplotlib's object API on the Agg canvas (no pyplot state, no display).

Each ``*_figure`` takes a record's verdicts or curves and returns a Figure, or None when the record has
nothing to draw; ``png_base64`` turns one into the string an ``<img src="data:...">`` embeds.
"""
from __future__ import annotations

import base64
import io
import math

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

PASS, FAIL, PAPER, CONTROL = "#1a7f37", "#cf222e", "#57606a", "#8c959f"
ERASURE_COLORS = {"baseline": "#0969da", "text": "#cf222e", "random": "#8c959f", "acoustic": "#bf8700",
                  "damage-matched": "#57606a", "text-deleted": "#8250df"}   # text-deleted: the cascade


def png_base64(fig: Figure, dpi: int = 110) -> str:
    buf = io.BytesIO()
    FigureCanvasAgg(fig)
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _grid(n: int, width: float = 4.6, height: float = 3.2, ncols: int = 3):
    cols = min(n, ncols)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def kappa_figure(verdicts) -> Figure | None:
    """Forest plot: κ with its CI per model × task (green passed, red failed), the paper's value as ◇,
    κ_min / κ_max thresholds as short grey ticks."""
    rows = sorted((v for v in verdicts if v.claim == "agreement"), key=lambda v: (v.model, v.task, v.condition))
    if not rows:
        return None
    fig = Figure(figsize=(8, 0.9 + 0.32 * len(rows)), layout="constrained")
    ax = fig.subplots()
    for y, v in enumerate(rows):
        color = PASS if v.passed else FAIL
        if v.ci and not any(math.isnan(x) for x in v.ci):
            ax.plot(v.ci, [y, y], color=color, lw=2)
        ax.plot([v.value], [y], "o", color=color, ms=6)
        if v.paper.get("value") is not None:
            ax.plot([v.paper["value"]], [y], "D", mfc="none", mec=PAPER, ms=7)
        for name in ("kappa_min", "kappa_max"):
            if isinstance(v.thresholds.get(name), (int, float)):
                ax.plot([v.thresholds[name]] * 2, [y - 0.35, y + 0.35], color=CONTROL, lw=1.5)
    ax.set_yticks(range(len(rows)), [f"{v.model} / {v.task}" + ("" if v.condition == "clean" else f" / {v.condition}")
                                     for v in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(min(-0.1, *[v.value for v in rows if not math.isnan(v.value)]) - 0.05, 1.02)
    ax.set_xlabel("Cohen's κ, speech-LLM vs matched cascade (95% CI)")
    ax.plot([], [], "o", color=PASS, label="passed")
    ax.plot([], [], "o", color=FAIL, label="failed")
    ax.plot([], [], "D", mfc="none", mec=PAPER, label="paper")
    ax.plot([], [], "|", color=CONTROL, label="threshold")
    fig.legend(loc="outside lower center", fontsize=8, ncols=4)
    ax.grid(axis="x", alpha=0.3)
    return fig


def _band(ax, x, ci, color):
    if ci and all(c is not None for c in ci):
        ax.fill_between(x, [c[0] for c in ci], [c[1] for c in ci], color=color, alpha=0.15, lw=0)


def lens_figure(curves: dict) -> Figure | None:
    """Per model: logit-lens bag-of-tokens precision per layer for each task (solid) vs its mismatched
    control (dashed, same colour)."""
    models = sorted(m for m, c in curves.items() if c.get("lens"))
    if not models:
        return None
    fig, axes = _grid(len(models))
    for ax, model in zip(axes, models):
        for i, (task, c) in enumerate(sorted(curves[model]["lens"].items())):
            color = f"C{i}"
            ax.plot(c["layers"], c["precision"], "-o", color=color, ms=3, label=task)
            ax.plot(c["layers"], c["control"], "--", color=color, alpha=0.7)
            _band(ax, c["layers"], c.get("precision_ci"), color)
        ax.plot([], [], "--", color=CONTROL, label="control")
        ax.set(title=model, xlabel="layer", ylabel="lens precision")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7)
    return fig


def erasure_figure(curves: dict) -> Figure | None:
    """Per model: accuracy per task at baseline and with the text / a random / the acoustic subspace erased
    (LEACE); chance as a dotted line."""
    models = sorted(m for m, c in curves.items() if c.get("erasure"))
    if not models:
        return None
    fig, axes = _grid(len(models))
    for ax, model in zip(axes, models):
        tasks = sorted(curves[model]["erasure"])
        width = 0.8 / len(ERASURE_COLORS)
        for j, cond in enumerate(ERASURE_COLORS):
            bars = [(i + (j - (len(ERASURE_COLORS) - 1) / 2) * width, c["accuracy"][cond], (c.get("ci") or {}).get(cond))
                    for i, task in enumerate(tasks) for c in [curves[model]["erasure"][task]]
                    if c["accuracy"].get(cond) is not None]
            ax.bar([x for x, _, _ in bars], [y for _, y, _ in bars], width, color=ERASURE_COLORS[cond],
                   label=cond if model == models[0] else None)
            for x, y, ci in bars:
                if ci and None not in ci:
                    ax.errorbar([x], [y], yerr=[[max(y - ci[0], 0)], [max(ci[1] - y, 0)]], color="black",
                                capsize=2, lw=0.8)
        for i, task in enumerate(tasks):
            chance = curves[model]["erasure"][task].get("chance")
            if chance is not None:
                ax.plot([i - 0.45, i + 0.45], [chance] * 2, ":", color="black", lw=1)
        ax.set_xticks(range(len(tasks)), tasks, fontsize=8)
        ax.set(title=model, ylabel="accuracy", ylim=(0, 1.05))
    fig.legend(loc="outside lower center", ncols=6, fontsize=8,
               title="erased (dotted: chance; text-deleted: the cascade with the concept's words deleted)")
    return fig


def noise_figure(curves: dict) -> Figure | None:
    """One row per model, one column per noise kind: accuracy vs SNR of the speech-LLM (solid) and its
    cascade (dashed), one colour per task; "clean" is drawn to the right of the highest SNR."""
    rows = [(m, kind) for m, c in sorted(curves.items()) for kind in ("white", "babble", "pink")
            if any(kind in t for t in c.get("noise", {}).values())]
    if not rows:
        return None
    fig, axes = _grid(len(rows), ncols=2)
    for ax, (model, kind) in zip(axes, rows):
        ticks = {}
        for i, (task, by_kind) in enumerate(sorted(curves[model]["noise"].items())):
            s = by_kind.get(kind)
            if not s:
                continue
            numeric = [x for x in s["snr"] if x != "clean"]
            clean_x = (max(numeric) if numeric else 0) + 10
            xs = [clean_x if x == "clean" else x for x in s["snr"]]
            ticks.update({x: ("clean" if x == clean_x else f"{x:g}") for x in xs})
            order = sorted(range(len(xs)), key=lambda k: xs[k])
            for series, style in (("speech_llm", "-o"), ("cascade", "--s")):
                ax.plot([xs[k] for k in order], [s[series][k] for k in order], style, color=f"C{i}", ms=3,
                        label=f"{task} {series.replace('_', '-')}")
                if s.get(f"{series}_ci"):
                    _band(ax, [xs[k] for k in order], [s[f"{series}_ci"][k] for k in order], f"C{i}")
        ax.set_xticks(list(ticks), list(ticks.values()))
        ax.set(title=f"{model} — {kind} noise", xlabel="SNR (dB)", ylabel="accuracy")
        ax.legend(fontsize=7)
    return fig


FIGURES = (("kappa", "κ per task, with CIs, beside the paper's values", lambda r: kappa_figure(r.verdicts)),
           ("lens", "Logit-lens precision per layer vs mismatched control", lambda r: lens_figure(r.curves)),
           ("erasure", "Accuracy under text / random / acoustic erasure (LEACE)", lambda r: erasure_figure(r.curves)),
           ("noise", "Accuracy vs SNR: speech-LLM and matched cascade", lambda r: noise_figure(r.curves)))
