"""Claim 2, emergence: the transcript's words surface in the backbone's layers at the audio positions (logit lens).

emergent ⇔ at the best layer inside the expectation's ``band`` (fractions of the depth), lens precision minus its
mismatched-transcript control has a paired CI above 0, and the precision is ≥ precision_min.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from harness.claims.checks import number
from harness.report.schema import CIS, COUNT, NUMS

if TYPE_CHECKING:
    from harness.claims.expectations import Expectation
    from harness.verdict import Verdict

OUTCOMES = ("emergent", "not emergent")
THRESHOLDS = {"precision_min": number(0, 1)}
# The report curve, ``curves[model]["emergence"][task]``: the lens per layer beside its control.
CURVE_SCHEMA = {"type": "object", "required": ["layers", "precision", "control"], "additionalProperties": False,
                "properties": {"layers": {"type": "array", "items": {"type": "integer"}}, "precision": NUMS,
                               "control": NUMS, "precision_ci": CIS, "control_ci": CIS, "n": COUNT}}
SAME_LENGTH = ("layers", "precision", "control", "precision_ci", "control_ci")


def verdict(evidence, exp: Expectation, peers: list) -> Verdict:
    lens = evidence.lens(exp.model, exp.task, evidence.claim_items(exp))
    d = lens.to_dict()
    evidence.curve(exp.model, "emergence")[exp.task] = {
        "layers": d["layers"], "precision": d["precision"]["mean"], "control": d["control"]["mean"],
        "precision_ci": [list(x) for x in zip(d["precision"]["ci_low"], d["precision"]["ci_high"])],
        "control_ci": [list(x) for x in zip(d["control"]["ci_low"], d["control"]["ci_high"])]}
    return decide(exp, lens)


def decide(exp: Expectation, lens) -> Verdict:
    """``lens``: ``probes.lens.LensResult`` (or its ``to_dict()``): per-layer precision, mismatched-transcript
    control and their paired difference, each {mean, ci_low, ci_high}. Separation is judged on the paired
    difference's CI (the same items read against their own vs another item's transcript).

    Only residual entries inside the expectation's ``band`` (fractions of the depth: entry l of L counts when
    band[0] ≤ l/L ≤ band[1]) are judged; the best of them is the layer reported, beside the overall peak."""
    d = lens if isinstance(lens, dict) else lens.to_dict()
    layers = list(d["layers"])
    prec, ctrl, diff = d["precision"], d["control"], d["difference"]
    lo_band, hi_band = exp.thresholds.get("band", (0.0, 1.0))
    depth = max(layers) or 1
    in_band = [j for j, layer in enumerate(layers) if lo_band - 1e-9 <= layer / depth <= hi_band + 1e-9]
    if not in_band:
        raise ValueError(f"{exp.model}/{exp.task}: emergence band {[lo_band, hi_band]} holds none of the lens "
                         f"layers {layers}")
    i = max(in_band, key=lambda j: (prec["mean"][j], -j))
    b = layers[i]
    peak = layers[max(range(len(layers)), key=lambda j: (prec["mean"][j], -j))]
    mean, lo, hi = prec["mean"][i], prec["ci_low"][i], prec["ci_high"][i]
    p_min = exp.thresholds["precision_min"]
    separated = diff["ci_low"][i] > 0
    where = f"layer {b}/{depth} (best in band {lo_band:g}–{hi_band:g}; overall peak layer {peak})"
    ctrl_txt = f"mismatched control {ctrl['mean'][i]:.3f} (difference CI [{diff['ci_low'][i]:+.3f}, " \
               f"{diff['ci_high'][i]:+.3f}])"
    if separated and mean >= p_min:
        observed, reason = "emergent", f"{where}: above {ctrl_txt} and ≥ precision_min {p_min:.2f}"
    else:
        observed = "not emergent"
        why = [] if separated else [f"not above {ctrl_txt}"]
        why += [] if mean >= p_min else [f"{mean:.3f} < precision_min {p_min:.2f}"]
        reason = f"{where}: " + " and ".join(why)
    return exp.verdict(observed, statistic="lens precision", value=mean, ci=(lo, hi), n=d["n_items"],
                       evidence={"best_layer": b, "peak_layer": peak, "band": [lo_band, hi_band],
                                 "control": ctrl["mean"][i],
                                 "difference_ci": [diff["ci_low"][i], diff["ci_high"][i]], "layers": layers,
                                 "precision": prec["mean"], "control_curve": ctrl["mean"]},
                       reason=reason)


# -- the report: its figure ----------------------------------------------------------------------------
FIGURE_TITLE = "Logit-lens precision per layer vs mismatched control"


def figure(verdicts, curves: dict) -> Figure | None:
    """Per model: logit-lens bag-of-tokens precision per layer for each task (solid) vs its mismatched
    control (dashed, same colour)."""
    from harness.report import plots

    models = sorted(m for m, c in curves.items() if c.get("emergence"))
    if not models:
        return None
    fig, axes = plots.grid(len(models))
    for ax, model in zip(axes, models):
        for i, (task, c) in enumerate(sorted(curves[model]["emergence"].items())):
            color = f"C{i}"
            ax.plot(c["layers"], c["precision"], "-o", color=color, ms=3, label=task)
            ax.plot(c["layers"], c["control"], "--", color=color, alpha=0.7)
            plots.band(ax, c["layers"], c.get("precision_ci"), color)
        ax.plot([], [], "--", color=plots.CONTROL, label="control")
        ax.set(title=model, xlabel="layer", ylabel="lens precision")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7)
    return fig
