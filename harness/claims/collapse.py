"""Claim 3, collapse: erasing the text concept (LEACE) drives accuracy to chance while a random erasure does not.

collapses ⇔ accuracy with text erased is not significantly above chance (its Wilson lower bound ≤ chance) while the
rank-matched random-subspace control keeps accuracy ≥ baseline − δ (its upper bound); guarded (the default), also
the answers stay spread, accuracy is not below chance, a damage-matched random erasure holds and the matched cascade
with the concept's words deleted falls to chance too (``decide``).
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from harness import stats
from harness.claims.checks import number
from harness.report.schema import CI, COUNT, NUM

if TYPE_CHECKING:
    from harness.claims.expectations import Expectation
    from harness.verdict import Verdict

OUTCOMES = ("collapses", "does not collapse")
THRESHOLDS = {"delta": number(0, 1)}
# The report curve, ``curves[model]["collapse"][task]``: accuracy under each erasure (text-deleted: the cascade).
ERASURES = ("baseline", "text", "random", "acoustic", "damage-matched", "text-deleted")
ERASURE_NAMES = {"none": "baseline", "energy": "acoustic", "damage": "damage-matched"}   # probe key → curve key
CURVE_SCHEMA = {"type": "object", "required": ["accuracy"], "additionalProperties": False,
                "properties": {"accuracy": {"type": "object", "required": ["baseline", "text"],
                                            "propertyNames": {"enum": list(ERASURES)}, "additionalProperties": NUM},
                               "ci": {"type": "object", "propertyNames": {"enum": list(ERASURES)},
                                      "additionalProperties": CI},
                               "chance": NUM, "n": COUNT}}


def verdict(evidence, exp: Expectation, peers: list) -> Verdict:
    guarded, n = bool(exp.thresholds.get("guarded", False)), evidence.claim_items(exp)
    res = evidence.erasure(exp.model, exp.task, exp.thresholds.get("layers", "paper"),
                           exp.thresholds.get("words", "frequent"), guarded, items=n,
                           concept_at=exp.thresholds.get("concept_at", "span"),
                           moments=exp.thresholds.get("moments", "central"))
    task = evidence.task(exp.task)
    items = {it.id: it for it in evidence.task_items(exp.model, exp.task, n)}
    gold = [items[i].label for i in res.split["eval"]]
    correct = {k: [c == g for c, g in zip(v, gold)] for k, v in res.choices.items()}
    curve = evidence.curve(exp.model, "collapse")[exp.task] = {
        "accuracy": {ERASURE_NAMES.get(k, k): sum(c) / len(c) for k, c in correct.items()},
        "chance": task.chance, "n": len(gold)}
    extra = {}
    if guarded:
        concept = [w for w in res.settings["concept_classes"] if w != "<other>"]
        deleted = evidence.deleted_words_answers(exp.model, exp.task, tuple(concept), items=n)
        extra = dict(damage_erased=correct["damage"], text_deleted=[a.correct for a in deleted],
                     erased_choices=res.choices["text"], reference_choices=[a.choice for a in deleted])
        curve["accuracy"]["text-deleted"] = sum(extra["text_deleted"]) / len(gold)
    v = decide(exp, baseline=correct["none"], text_erased=correct["text"], random_erased=correct["random"],
               acoustic_erased=correct.get("energy"), chance=task.chance, **extra)
    return dataclasses.replace(v, evidence={**v.evidence, "fit_items": len(res.split["fit"]),
                                            "layers_erased": list(res.layers),
                                            "concept": res.settings["text_concept"],
                                            "moments": res.settings["moments"],
                                            "max_rank": {k: max(e["ranks"].values(), default=0)
                                                         for k, e in res.erasers.items()}})


FAILED_GUARD = {     # how each failed check reads in the verdict line
    "at chance": "text-erased accuracy above chance",
    "not below chance": "text-erased accuracy below chance (answers against the label: damage)",
    "random control holds": "random control also drops",
    "answers spread": "degenerate erased answers (nearly one label: damage, not text removal)",
    "damage control holds": "damage-matched random control also drops",
    "text level": "deleting the concept's words does not cost the cascade the task",
}


def answers_spread(erased: list, reference: list, alpha: float = 0.05) -> tuple[bool, str]:
    """(not degenerate, the line): degenerate ⇔ the erased answers use fewer labels' worth of entropy
    (``stats.effective_labels``) than ``reference`` AND their label counts differ from the reference's (χ² test of
    homogeneity, scipy, at ``alpha``)."""
    p = stats.label_homogeneity_p(erased, reference)
    e_eff, r_eff = stats.effective_labels(erased), stats.effective_labels(reference)
    degenerate = e_eff < r_eff and p < alpha
    return not degenerate, (f"erased answers use {e_eff:.1f} labels' worth vs {r_eff:.1f} for a reader without the "
                            f"words (χ² p={p:.2g})")


def decide(exp: Expectation, *, baseline: list[bool], text_erased: list[bool], random_erased: list[bool],
           chance: float, acoustic_erased: list[bool] | None = None, damage_erased: list[bool] | None = None,
           text_deleted: list[bool] | None = None, erased_choices: list | None = None,
           reference_choices: list | None = None) -> Verdict:
    """Per-item correctness (same items) under no erasure, text erasure, random- and acoustic-subspace erasure.

    Guards (each applied when its evidence is given; the verdict line shows every one):
    - **spread**: the text-erased answers are not significantly more concentrated on one label than a text-free
      reader's (``answers_spread``): the matched cascade with the concept's words deleted when given
      (``reference_choices``), else the gold labels. A model answering one label for nearly every item while a
      reader without those words still spreads its answers is damaged, not text-free: it sits at chance
      whatever it heard.
    - **not below chance**: text-erased accuracy significantly *below* chance (Wilson upper bound < chance, e.g.
      the paper's 0.0%) means answers against the label or outside it — damage, not removal of information.
    - **damage-matched control**: a random subspace displacing the activations as much as the text eraser did
      (``probes.leace.damage_matched_eraser``) must also keep accuracy ≥ baseline − δ.
    - **text level**: the matched cascade reading its transcript with the concept's words deleted must fall to
      chance too (Wilson lower bound ≤ chance) — the concept holds the task's information, so erasing it *should*
      cost the task everything.
    """
    n = len(baseline)
    given = {"text": text_erased, "random": random_erased, "damage": damage_erased, "deleted": text_deleted,
             "acoustic": acoustic_erased}
    bad = {k: len(v) for k, v in given.items() if v is not None and len(v) != n}
    if not n or bad:
        raise ValueError(f"{exp.model}/{exp.task}: collapse needs the same non-empty items under every eraser "
                         f"(baseline {n}, " + ", ".join(f"{k} {v}" for k, v in bad.items()) + ")")
    acc = {k: sum(v) / n for k, v in given.items() if v is not None}
    acc["baseline"] = sum(baseline) / n
    wilson = {k: stats.wilson_interval(sum(v), n) for k, v in given.items() if v is not None}
    t_lo, t_hi = wilson["text"]
    delta = exp.thresholds["delta"]
    floor = acc["baseline"] - delta
    checks: dict[str, tuple[bool, str]] = {
        "at chance": (t_lo <= chance, f"text erased {acc['text']:.2f} [{t_lo:.2f}, {t_hi:.2f}] vs chance {chance:.2f}"),
        "not below chance": (t_hi >= chance, f"upper bound {t_hi:.2f} ≥ chance"),
        "random control holds": (wilson["random"][1] >= floor,
                                 f"rank-matched random {acc['random']:.2f} (≥ {acc['baseline']:.2f} − {delta:.2f})"),
    }
    if erased_choices is not None and reference_choices is not None:
        spread, text = answers_spread(erased_choices, reference_choices, exp.thresholds.get("alpha", 0.05))
        checks["answers spread"] = (spread, text)
    if damage_erased is not None:
        checks["damage control holds"] = (wilson["damage"][1] >= floor,
                                          f"damage-matched random {acc['damage']:.2f}")
    if text_deleted is not None:
        d_lo, d_hi = wilson["deleted"]
        checks["text level"] = (d_lo <= chance, f"cascade with the concept's words deleted {acc['deleted']:.2f} "
                                                f"[{d_lo:.2f}, {d_hi:.2f}]")
    p = stats.binomial_p(sum(text_erased), n, chance, "greater")
    failed = [FAILED_GUARD[name] for name, (ok, _) in checks.items() if not ok]
    observed = "does not collapse" if failed else "collapses"
    shown = "; ".join(f"{'✓' if ok else '✗'} {name}: {text}" for name, (ok, text) in checks.items())
    reason = (f"{' and '.join(failed)} — " if failed else "") + shown
    evidence = {"accuracy_baseline": acc["baseline"], "accuracy_random": acc["random"],
                "accuracy_random_ci": list(wilson["random"]), "chance": chance,
                "checks": {name: ok for name, (ok, _) in checks.items()}}
    if acoustic_erased is not None:
        evidence["accuracy_acoustic"] = acc["acoustic"]
    if damage_erased is not None:
        evidence.update(accuracy_damage=acc["damage"], accuracy_damage_ci=list(wilson["damage"]))
    if text_deleted is not None:
        evidence.update(accuracy_text_deleted=acc["deleted"], accuracy_text_deleted_ci=list(wilson["deleted"]))
    if erased_choices is not None:
        evidence["effective_labels_erased"] = stats.effective_labels(erased_choices)
    return exp.verdict(observed, statistic="accuracy (text erased)", value=acc["text"], ci=(t_lo, t_hi), n=n,
                       p=p, p_method="binomial vs chance, one-sided", evidence=evidence, reason=reason)


# -- the report: its figure ----------------------------------------------------------------------------
FIGURE_TITLE = "Accuracy under text / random / acoustic erasure (LEACE)"
ERASURE_COLORS = {"baseline": "#0969da", "text": "#cf222e", "random": "#8c959f", "acoustic": "#bf8700",
                  "damage-matched": "#57606a", "text-deleted": "#8250df"}   # text-deleted: the cascade


def figure(verdicts, curves: dict) -> Figure | None:
    """Per model: accuracy per task at baseline and with the text / a random / the acoustic subspace erased
    (LEACE); chance as a dotted line."""
    from harness.report import plots

    models = sorted(m for m, c in curves.items() if c.get("collapse"))
    if not models:
        return None
    fig, axes = plots.grid(len(models))
    for ax, model in zip(axes, models):
        tasks = sorted(curves[model]["collapse"])
        width = 0.8 / len(ERASURE_COLORS)
        for j, cond in enumerate(ERASURE_COLORS):
            bars = [(i + (j - (len(ERASURE_COLORS) - 1) / 2) * width, c["accuracy"][cond], (c.get("ci") or {}).get(cond))
                    for i, task in enumerate(tasks) for c in [curves[model]["collapse"][task]]
                    if c["accuracy"].get(cond) is not None]
            ax.bar([x for x, _, _ in bars], [y for _, y, _ in bars], width, color=ERASURE_COLORS[cond],
                   label=cond if model == models[0] else None)
            for x, y, ci in bars:
                if ci and None not in ci:
                    ax.errorbar([x], [y], yerr=[[max(y - ci[0], 0)], [max(ci[1] - y, 0)]], color="black",
                                capsize=2, lw=0.8)
        for i, task in enumerate(tasks):
            chance = curves[model]["collapse"][task].get("chance")
            if chance is not None:
                ax.plot([i - 0.45, i + 0.45], [chance] * 2, ":", color="black", lw=1)
        ax.set_xticks(range(len(tasks)), tasks, fontsize=8)
        ax.set(title=model, ylabel="accuracy", ylim=(0, 1.05))
    fig.legend(loc="outside lower center", ncols=6, fontsize=8,
               title="erased (dotted: chance; text-deleted: the cascade with the concept's words deleted)")
    return fig
