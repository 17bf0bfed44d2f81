"""Claim 4, noise: under noise (white, babble; clean → 0 dB) the speech-LLM's advantage over its cascade shrinks.

shrinks ⇔ the speech-LLM's accuracy advantage over its cascade at the lowest SNR is below the clean advantage
(paired bootstrap CI of the change < 0); reverses ⇔ additionally the low-SNR advantage's CI upper bound ≤ 0. One
test per noise kind (``expand``): ``test_noise[model/task/white]``.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from harness import stats
from harness.audio import Condition
from harness.report.schema import CIS, COUNT, NUMS

if TYPE_CHECKING:
    from harness.claims.expectations import Expectation
    from harness.verdict import Verdict

OUTCOMES = ("reverses", "shrinks", "does not shrink")
NOISE_GRID = (20, 10, 5, 0)        # dB, besides clean (the paper's range: clean down to 0 dB); claims may narrow it


def _kinds(v):
    kinds = ("white", "pink", "babble")           # the kinds the runner can make (a noise *file* it cannot)
    if not isinstance(v, list) or not v or any(k not in kinds for k in v):
        return f"must be a non-empty list of {'/'.join(kinds)}, got {v!r}"
    return None


THRESHOLDS = {"kinds": _kinds}
# The report curve, ``curves[model]["noise"][task][kind]``: both systems' accuracy along the SNR grid.
NOISES = ("white", "babble", "pink")
SERIES_SCHEMA = {"type": "object", "required": ["snr", "speech_llm", "cascade"], "additionalProperties": False,
                 "properties": {"snr": {"type": "array", "items": {"anyOf": [{"const": "clean"}, {"type": "number"}]}},
                                "speech_llm": NUMS, "cascade": NUMS, "speech_llm_ci": CIS, "cascade_ci": CIS,
                                "n": COUNT}}
CURVE_SCHEMA = {"type": "object", "propertyNames": {"enum": list(NOISES)}, "additionalProperties": SERIES_SCHEMA}
SAME_LENGTH = ("snr", "speech_llm", "cascade", "speech_llm_ci", "cascade_ci")


def series(curve: dict):
    """(where, series) of one task's curve whose ``SAME_LENGTH`` lists must agree: one per noise kind."""
    return [(f".{kind}", s) for kind, s in curve.items()]


def expand(exp: Expectation) -> list[Expectation]:
    """One expectation per noise kind: each kind is its own test and verdict."""
    return [dataclasses.replace(exp, thresholds={**exp.thresholds, "kind": kind}) for kind in exp.thresholds["kinds"]]


def variant(exp: Expectation) -> str:
    return exp.thresholds["kind"]


def correctness(evidence, model_id: str, task_name: str, kind: str, grid: tuple[int, ...] | None = None,
                items: int | None = None) -> dict:
    """Per condition: per-item correctness of both systems (clean + the SNR grid of ``kind`` noise)."""
    out = {"llm": {}, "cascade": {}}
    for cond in ["clean", *(f"{kind}@{snr}#{evidence.seed}" for snr in (grid or evidence.noise_grid or NOISE_GRID))]:
        llm, casc = evidence.answers(model_id, task_name, cond, items=items)
        key = "clean" if cond == "clean" else f"{Condition.parse(cond).snr_db:g} dB"
        out["llm"][key] = [x.correct for x in llm]
        out["cascade"][key] = [x.correct for x in casc]
    return out


def verdict(evidence, exp: Expectation, peers: list) -> Verdict:
    """The expectation may narrow the SNR grid (``grid``; a run-wide ``noise_grid`` overrides it); its items are
    sized like every claim's (``Evidence.claim_items``)."""
    kind = exp.thresholds["kind"]
    grid = tuple(evidence.noise_grid or exp.thresholds.get("grid") or NOISE_GRID)
    curve = correctness(evidence, exp.model, exp.task, kind, grid, evidence.claim_items(exp))
    low = f"{min(grid):g} dB"
    evidence.curve(exp.model, "noise").setdefault(exp.task, {})[kind] = {
        "snr": ["clean", *grid], "n": len(curve["llm"]["clean"]),
        "speech_llm": [sum(v) / len(v) for v in curve["llm"].values()],
        "cascade": [sum(v) / len(v) for v in curve["cascade"].values()]}
    return decide(exp, llm=curve["llm"], cascade=curve["cascade"], low=low, seed=evidence.seed)


def decide(exp: Expectation, *, llm: dict[str, list[bool]], cascade: dict[str, list[bool]], low: str,
           clean: str = "clean", seed: int = 0) -> Verdict:
    """``llm``/``cascade``: condition key → per-item correctness (same items). Advantage = acc(llm) − acc(cascade);
    the change from ``clean`` to ``low`` gets a paired bootstrap CI over items (``stats.advantage_change``)."""
    res = stats.advantage_change(llm, cascade, low=low, clean=clean, seed=seed)
    adv, d, (ch_lo, ch_hi), (la_lo, la_hi) = res.advantage, res.change, res.change_ci, res.low_advantage_ci
    shrinks = ch_hi < 0
    reverses = shrinks and la_hi <= 0
    observed = "reverses" if reverses else "shrinks" if shrinks else "does not shrink"
    if exp.expected == "shrinks" and observed == "reverses":
        observed = "shrinks"          # a reversal is also a shrink; report the weaker claim that was asked
    reason = (f"speech-LLM − cascade accuracy {adv[clean]:+.3f} clean → {adv[low]:+.3f} at {low} "
              f"(change CI [{ch_lo:+.3f}, {ch_hi:+.3f}]; low-SNR advantage CI [{la_lo:+.3f}, {la_hi:+.3f}])")
    return exp.verdict(observed, statistic="Δadvantage", value=d, ci=(ch_lo, ch_hi), n=res.n,
                       evidence={"advantage": adv, "accuracy_llm": res.accuracy_a, "accuracy_cascade": res.accuracy_b,
                                 "low_advantage_ci": [la_lo, la_hi]},
                       condition=f"{exp.thresholds.get('kind', 'noise')}", reason=reason)


# -- the report: its figure ----------------------------------------------------------------------------
FIGURE_TITLE = "Accuracy vs SNR: speech-LLM and matched cascade"


def figure(verdicts, curves: dict) -> Figure | None:
    """One row per model, one column per noise kind: accuracy vs SNR of the speech-LLM (solid) and its
    cascade (dashed), one colour per task; "clean" is drawn to the right of the highest SNR."""
    from harness.report import plots

    rows = [(m, kind) for m, c in sorted(curves.items()) for kind in NOISES
            if any(kind in t for t in c.get("noise", {}).values())]
    if not rows:
        return None
    fig, axes = plots.grid(len(rows), ncols=2)
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
                    plots.band(ax, [xs[k] for k in order], [s[f"{series}_ci"][k] for k in order], f"C{i}")
        ax.set_xticks(list(ticks), list(ticks.values()))
        ax.set(title=f"{model} — {kind} noise", xlabel="SNR (dB)", ylabel="accuracy")
        ax.legend(fontsize=7)
    return fig
