"""Claim 1, agreement: the speech-LLM answers like its matched cascade — or diverges where it should.

equivalent ⇔ κ's lower CI bound ≥ κ_min and McNemar not significant after BH-FDR across the model's tasks;
divergent ⇔ κ's upper bound < κ_max or McNemar significant; otherwise inconclusive (more items needed). Beside
it the verdict carries error overlap and the ceiling (cascade vs the same backbone reading the gold text).
"""
from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

from harness import stats
from harness.claims.checks import number

if TYPE_CHECKING:
    from harness.claims.expectations import Expectation
    from harness.verdict import Verdict

OUTCOMES = ("equivalent", "divergent")
THRESHOLDS = {"kappa_min": number(-1, 1), "kappa_max": number(-1, 1), "alpha": number(0, 1, open_lo=True,
                                                                                     open_hi=True)}


RATERS = {"a": "speech-LLM", "b": "cascade"}     # stats.agreement's raters, in the order _stats passes them


def verdict(evidence, exp: Expectation, peers: list) -> Verdict:
    """``peers``: the model's agreement expectations (or their task names), the FDR family of McNemar tests; each
    task on its own expectation's items (``Evidence.claim_items``)."""
    sizes = {exp.task: evidence.claim_items(exp)}
    for p in peers:
        task = p if isinstance(p, str) else p.task
        if task not in sizes:
            sizes[task] = evidence.n_items(exp.model) if isinstance(p, str) else evidence.claim_items(p)
    family = sorted(sizes)
    tests = {t: _stats(evidence, exp.model, t, sizes[t])[1] for t in family}
    adjusted = dict(zip(family, stats.adjust_pvalues([tests[t].p_value for t in family], "fdr_bh")))
    kappa, test, overlap, ceil = _stats(evidence, exp.model, exp.task, sizes[exp.task])
    v = decide(exp, kappa, float(adjusted[exp.task]), test, ceiling=ceil, overlap=overlap,
               p_method=f"McNemar exact, BH over {len(family)} task(s)")
    if kappa.constant_rater:        # a = the speech-LLM's answers, b = the cascade's (see _stats)
        who = RATERS[kappa.constant_rater]
        v = dataclasses.replace(v, evidence={**v.evidence, "constant_rater": who})
    return v


def _stats(evidence, model_id: str, task_name: str, items: int | None):
    """(κ, McNemar, error overlap, ceiling) of one task, once per session: every task's verdict needs the family's."""
    def compute():
        task = evidence.task(task_name)
        llm, casc = evidence.answers(model_id, task_name, items=items)
        a, b = [x.choice for x in llm], [x.choice for x in casc]
        k = len(task.labels) if task.kind == "classification" else len(task.items[0].options)
        kappa = stats.agreement(a, b, seed=evidence.seed, n_categories=k)
        test = stats.mcnemar([x.correct for x in llm], [x.correct for x in casc])
        overlap = stats.error_overlap(a, b, [it.label for it in evidence.task_items(model_id, task_name, items)])
        oracle = [x.choice for x in evidence.oracle_answers(model_id, task_name, items)]
        ceil = stats.ceiling(a, b, oracle, seed=evidence.seed)
        return kappa, test, overlap, ceil

    return evidence.memo(("agreement", model_id, task_name, items), compute)


def decide(exp: Expectation, kappa, mcnemar_p_adjusted: float, mcnemar, *, ceiling=None, overlap=None,
           p_method: str = "McNemar exact, BH") -> Verdict:
    """``kappa``: stats.Agreement; ``mcnemar``: stats.McNemar; the p-value already FDR-adjusted across tasks."""
    k_min, k_max, alpha = exp.thresholds["kappa_min"], exp.thresholds["kappa_max"], exp.thresholds["alpha"]
    significant = mcnemar_p_adjusted < alpha
    if kappa.reason:
        observed, reason = "inconclusive", f"κ undefined: {kappa.reason}"
    elif kappa.ci_low >= k_min and not significant:
        observed, reason = "equivalent", f"lower bound {kappa.ci_low:.2f} ≥ κ_min {k_min:.2f}, McNemar n.s."
    elif kappa.ci_high < k_max or significant:
        why = [f"upper bound {kappa.ci_high:.2f} < κ_max {k_max:.2f}"] if kappa.ci_high < k_max else []
        if why and kappa.constant_rater:     # its interval is [0, 0] by construction: say why instead
            who = RATERS[kappa.constant_rater]
            why = [f"the {who} gave one answer to every item (κ = 0 by construction, below κ_max {k_max:.2f})"]
        why += [f"McNemar significant (b={mcnemar.b}, c={mcnemar.c})"] if significant else []
        observed, reason = "divergent", " and ".join(why)
    else:
        observed, reason = "inconclusive", (f"CI [{kappa.ci_low:.2f}, {kappa.ci_high:.2f}] straddles "
                                            f"κ_min {k_min:.2f}/κ_max {k_max:.2f}; more items needed")
    evidence = {"raw_agreement": kappa.raw, "ac1": kappa.ac1, "ci_method": kappa.method,
                "mcnemar_b": mcnemar.b, "mcnemar_c": mcnemar.c, "mcnemar_p_raw": mcnemar.p_value}
    if ceiling is not None:
        evidence.update(ceiling_kappa=ceiling.kappa_ceiling, ceiling_delta=ceiling.delta,
                        ceiling_delta_ci=[ceiling.ci_low, ceiling.ci_high])
    if overlap is not None and not overlap.reason:
        evidence.update(error_overlap=overlap.overlap, error_overlap_ci=[overlap.ci_low, overlap.ci_high])
    return exp.verdict(observed, statistic="κ", value=kappa.kappa, ci=(kappa.ci_low, kappa.ci_high), n=kappa.n,
                       p=mcnemar_p_adjusted, p_method=p_method, evidence=evidence, reason=reason)


# -- the report: its figure ----------------------------------------------------------------------------
FIGURE_TITLE = "κ per task, with CIs, beside the paper's values"


def figure(verdicts, curves: dict) -> Figure | None:
    """Forest plot: κ with its CI per model × task (green passed, red failed), the paper's value as ◇,
    κ_min / κ_max thresholds as short grey ticks."""
    from matplotlib.figure import Figure

    from harness.report.plots import CONTROL, FAIL, PAPER, PASS

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
