"""The paper's four claims as functions: evidence + expectation → :class:`~harness.verdict.Verdict`.

Expectations live in ``fixtures/claims/*.toml`` (``defaults.toml`` holds the thresholds and the outcomes
assumed for models the paper did not test; ``<model id>.toml`` overrides per task). Each evaluator decides
an *observed* outcome from the evidence alone, then compares it with the expected one — so a verdict reads
the same whichever way a model moves, and a report can say "broke" or "newly reached" equivalence.

Decision rules (thresholds from the paper or from statistics, never fitted to our own fixtures):
- **agreement**: equivalent ⇔ κ's lower CI bound ≥ κ_min and McNemar not significant after FDR across the
  model's tasks; divergent ⇔ κ's upper bound < κ_max or McNemar significant; otherwise inconclusive.
- **emergence**: emergent ⇔ at the best layer, lens precision minus its mismatched-transcript control has a
  paired CI above 0, and the precision is ≥ precision_min.
- **collapse**: collapses ⇔ accuracy with text erased is not significantly above chance (its Wilson lower
  bound ≤ chance) while the random-subspace control keeps accuracy ≥ baseline − δ (its upper bound).
- **noise**: shrinks ⇔ the speech-LLM's accuracy advantage over its cascade at the lowest SNR is below the clean
  advantage (paired bootstrap CI of the difference < 0); reverses ⇔ additionally the low-SNR advantage's
  CI upper bound ≤ 0.
"""
from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from harness.verdict import CLAIMS, Verdict

CLAIMS_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "claims"
OUTCOMES = {
    "agreement": ("equivalent", "divergent"),
    "emergence": ("emergent", "not emergent"),
    "collapse": ("collapses", "does not collapse"),
    "noise": ("reverses", "shrinks", "does not shrink"),
}


class ClaimsFileError(ValueError):
    """A claims file is malformed; the message names the file and the entry."""


# -- schema: what each threshold and entry field may hold (checked at load, naming file and field) --------------
def _number(lo: float, hi: float, *, open_lo: bool = False, open_hi: bool = False):
    def check(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return f"must be a number, got {v!r}"
        if v < lo or v > hi or (open_lo and v == lo) or (open_hi and v == hi):
            return f"must be in {'(' if open_lo else '['}{lo:g}, {hi:g}{')' if open_hi else ']'}, got {v!r}"
        return None
    return check


def _noise_kinds(v):
    kinds = ("white", "pink", "babble")           # the kinds the runner can make (a noise *file* it cannot)
    if not isinstance(v, list) or not v or any(k not in kinds for k in v):
        return f"must be a non-empty list of {'/'.join(kinds)}, got {v!r}"
    return None


def _text(v):
    return None if isinstance(v, str) and v.strip() else f"must be a non-empty string, got {v!r}"


THRESHOLDS = {
    "agreement": {"kappa_min": _number(-1, 1), "kappa_max": _number(-1, 1), "alpha": _number(0, 1, open_lo=True,
                                                                                               open_hi=True)},
    "emergence": {"precision_min": _number(0, 1)},
    "collapse": {"delta": _number(0, 1)},
    "noise": {"kinds": _noise_kinds},
}
# paper: the paper's number; seed: what the seed summary said (text); tier: N/S/A (../shared/PAPER.md)
ENTRY_FIELDS = {"expected": _text, "paper": _number(-1e9, 1e9), "tier": _text, "seed": _text, "note": _text,
                "known_issue": _text}


def _check_fields(values: dict, checks: dict, where: str) -> None:
    for key, value in values.items():
        problem = checks[key](value) if key in checks else None
        if problem:
            raise ClaimsFileError(f"{where}: {key} {problem}")


def _task_problem(task: str) -> str | None:
    """None if ``harness.tasks`` knows the task (a mini twin or a hub dataset) or it names a task file."""
    from harness.tasks import hub_task_names, mini_task_names

    known = sorted({*mini_task_names(), *hub_task_names()})
    if task in known or "/" in task or task.endswith(".toml"):
        return None
    return f"unknown task {task!r}; known: {', '.join(known)}"


@dataclass(frozen=True)
class Expectation:
    model: str
    task: str
    claim: str
    expected: str
    thresholds: dict
    paper: dict = field(default_factory=dict)
    source: str = ""                  # the file (and table) this came from
    known_issue: str | None = None    # a documented, expected failure (the test is a strict xfail)

    def __post_init__(self):
        if self.claim not in CLAIMS:
            raise ClaimsFileError(f"{self.source}: unknown claim {self.claim!r} (expected one of {CLAIMS})")
        if self.expected not in OUTCOMES[self.claim]:
            raise ClaimsFileError(f"{self.source}: {self.model}/{self.task}/{self.claim}: expected outcome "
                                  f"{self.expected!r} is not one of {OUTCOMES[self.claim]}")


def _read(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ClaimsFileError(f"{path}: {exc}") from None


def load_defaults(directory: Path = CLAIMS_DIR) -> dict:
    data = _read(Path(directory) / "defaults.toml")
    missing = [c for c in CLAIMS if c not in data.get("thresholds", {})]
    if missing:
        raise ClaimsFileError(f"{directory}/defaults.toml: [thresholds.*] missing for {missing}")
    for claim in CLAIMS:
        table = data["thresholds"][claim]
        absent = sorted(set(THRESHOLDS[claim]) - set(table))
        if absent:
            raise ClaimsFileError(f"{directory}/defaults.toml [thresholds.{claim}]: missing {absent}")
        _check_fields(table, THRESHOLDS[claim], f"{directory}/defaults.toml [thresholds.{claim}]")
    return data


def expectations(model: str, *, text_sufficient: list[str], text_insufficient: list[str],
                 directory: Path = CLAIMS_DIR) -> list[Expectation]:
    """The model's expectations: its own file's tasks if it has one, else the defaults' per task kind."""
    directory = Path(directory)
    defaults = load_defaults(directory)
    own = directory / f"{model}.toml"
    out = []
    if own.exists():
        data = _read(own)
        if data.get("model") != model:
            raise ClaimsFileError(f"{own}: model = {data.get('model')!r}, expected {model!r} (the file name)")
        for task, claims in data.get("tasks", {}).items():
            if _task_problem(task):
                raise ClaimsFileError(f"{own} [tasks.{task}]: {_task_problem(task)}")
            if not isinstance(claims, dict):
                raise ClaimsFileError(f"{own} [tasks.{task}]: expected a table of claims, got {claims!r}")
            for claim, entry in claims.items():
                out += _expectations(model, task, claim, entry, defaults, f"{own.name} [tasks.{task}]")
        return out
    for kind, tasks in (("text_sufficient", text_sufficient), ("text_insufficient", text_insufficient)):
        for task in tasks:
            for claim, entry in defaults.get("new_models", {}).get(kind, {}).items():
                out += _expectations(model, task, claim, entry, defaults, f"defaults.toml [new_models.{kind}]")
    return out


def _expectations(model, task, claim, entry, defaults, source) -> list[Expectation]:
    """One expectation, or one per noise kind for the noise claim (tests read ``[model/task/<kind>]``)."""
    exp = _expectation(model, task, claim, entry, defaults, source)
    if claim != "noise":
        return [exp]
    return [dataclasses.replace(exp, thresholds={**exp.thresholds, "kind": kind}) for kind in exp.thresholds["kinds"]]


def _expectation(model, task, claim, entry, defaults, source) -> Expectation:
    if isinstance(entry, str):
        entry = {"expected": entry}
    if not isinstance(entry, dict):
        raise ClaimsFileError(f"{source}: {claim} must be an outcome or a table, got {entry!r}")
    if "expected" not in entry:
        raise ClaimsFileError(f"{source}: {claim} needs an 'expected' outcome")
    if claim not in CLAIMS:
        raise ClaimsFileError(f"{source}: unknown claim {claim!r} (expected one of {CLAIMS})")
    thresholds = dict(defaults["thresholds"][claim])
    thresholds.update({k: v for k, v in entry.items() if k in thresholds})
    unknown = set(entry) - set(thresholds) - {"expected", "paper", "tier", "seed", "note", "known_issue"}
    if unknown:
        raise ClaimsFileError(f"{source}: {claim}: unknown keys {sorted(unknown)}")
    _check_fields(entry, {**THRESHOLDS[claim], **ENTRY_FIELDS}, f"{source}: {claim}")
    paper = {k: entry[k] for k in ("tier", "seed", "note") if k in entry}
    if "paper" in entry:
        paper["value"] = entry["paper"]
    return Expectation(model, task, claim, entry["expected"], thresholds, paper, source, entry.get("known_issue"))


# -- the four evaluators --------------------------------------------------------------------------------
def _verdict(exp: Expectation, observed: str, **kw) -> Verdict:
    return Verdict(model=exp.model, task=exp.task, claim=exp.claim, expected=exp.expected, observed=observed,
                   passed=observed == exp.expected, thresholds=exp.thresholds, paper=exp.paper, **kw)


def agreement(exp: Expectation, kappa, mcnemar_p_adjusted: float, mcnemar, *, ceiling=None, overlap=None,
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
    return _verdict(exp, observed, statistic="κ", value=kappa.kappa, ci=(kappa.ci_low, kappa.ci_high),
                    n=kappa.n, p=mcnemar_p_adjusted, p_method=p_method, evidence=evidence, reason=reason)


def emergence(exp: Expectation, lens) -> Verdict:
    """``lens``: ``probes.lens.LensResult`` (or its ``to_dict()``): per-layer precision, mismatched-transcript
    control and their paired difference, each {mean, ci_low, ci_high}. Separation is judged on the paired
    difference's CI (the same items read against their own vs another item's transcript)."""
    d = lens if isinstance(lens, dict) else lens.to_dict()
    b = d["best_layer"]
    i = d["layers"].index(b)
    prec, ctrl, diff = d["precision"], d["control"], d["difference"]
    mean, lo, hi = prec["mean"][i], prec["ci_low"][i], prec["ci_high"][i]
    p_min = exp.thresholds["precision_min"]
    separated = diff["ci_low"][i] > 0
    ctrl_txt = f"mismatched control {ctrl['mean'][i]:.3f} (difference CI [{diff['ci_low'][i]:+.3f}, " \
               f"{diff['ci_high'][i]:+.3f}])"
    if separated and mean >= p_min:
        observed, reason = "emergent", f"layer {b}: above {ctrl_txt} and ≥ precision_min {p_min:.2f}"
    else:
        observed = "not emergent"
        why = [] if separated else [f"not above {ctrl_txt}"]
        why += [] if mean >= p_min else [f"{mean:.3f} < precision_min {p_min:.2f}"]
        reason = f"layer {b}: " + " and ".join(why)
    return _verdict(exp, observed, statistic="lens precision", value=mean, ci=(lo, hi), n=d["n_items"],
                    evidence={"best_layer": b, "control": ctrl["mean"][i],
                              "difference_ci": [diff["ci_low"][i], diff["ci_high"][i]], "layers": d["layers"],
                              "precision": prec["mean"], "control_curve": ctrl["mean"]},
                    reason=reason)


def _wilson(correct: int, n: int) -> tuple[float, float]:
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(correct, n, alpha=0.05, method="wilson")
    return float(lo), float(hi)


def collapse(exp: Expectation, *, baseline: list[bool], text_erased: list[bool], random_erased: list[bool],
             chance: float, acoustic_erased: list[bool] | None = None) -> Verdict:
    """Per-item correctness (same items) under no erasure, text erasure, random- and acoustic-subspace erasure."""
    n = len(baseline)
    if not n or not (len(text_erased) == len(random_erased) == n):
        raise ValueError(f"{exp.model}/{exp.task}: collapse needs the same non-empty items under every eraser "
                         f"(baseline {n}, text {len(text_erased)}, random {len(random_erased)})")
    acc = {k: sum(v) / n for k, v in (("baseline", baseline), ("text", text_erased), ("random", random_erased))}
    t_lo, t_hi = _wilson(sum(text_erased), n)
    r_lo, r_hi = _wilson(sum(random_erased), n)
    delta = exp.thresholds["delta"]
    at_chance = t_lo <= chance
    control_holds = r_hi >= acc["baseline"] - delta
    from scipy.stats import binomtest

    p = float(binomtest(sum(text_erased), n, chance, alternative="greater").pvalue)
    if at_chance and control_holds:
        observed = "collapses"
        reason = (f"text-erased lower bound {t_lo:.2f} ≤ chance {chance:.2f}; random control "
                  f"{acc['random']:.2f} ≥ baseline {acc['baseline']:.2f} − {delta:.2f}")
    else:
        observed = "does not collapse"
        why = [] if at_chance else [f"text-erased accuracy above chance {chance:.2f} (lower bound {t_lo:.2f})"]
        why += [] if control_holds else [f"random control also drops: {acc['random']:.2f} [{r_lo:.2f}, "
                                         f"{r_hi:.2f}] < baseline {acc['baseline']:.2f} − {delta:.2f}"]
        reason = " and ".join(why)
    evidence = {"accuracy_baseline": acc["baseline"], "accuracy_random": acc["random"],
                "accuracy_random_ci": [r_lo, r_hi], "chance": chance}
    if acoustic_erased is not None:
        evidence["accuracy_acoustic"] = sum(acoustic_erased) / n
    return _verdict(exp, observed, statistic="accuracy (text erased)", value=acc["text"], ci=(t_lo, t_hi), n=n,
                    p=p, p_method="binomial vs chance, one-sided", evidence=evidence, reason=reason)


def noise(exp: Expectation, *, llm: dict[str, list[bool]], cascade: dict[str, list[bool]], low: str,
          clean: str = "clean", seed: int = 0) -> Verdict:
    """``llm``/``cascade``: condition key → per-item correctness (same items). Advantage = acc(llm) − acc(cascade);
    the change from ``clean`` to ``low`` gets a paired bootstrap CI over items (scipy)."""
    import numpy as np
    from scipy.stats import bootstrap

    a = {c: np.asarray(v, float) for c, v in llm.items()}
    b = {c: np.asarray(v, float) for c, v in cascade.items()}
    n = len(a[clean])
    adv = {c: float(a[c].mean() - b[c].mean()) for c in a}

    def change(x_clean, y_clean, x_low, y_low, axis=-1):
        return (x_low.mean(axis) - y_low.mean(axis)) - (x_clean.mean(axis) - y_clean.mean(axis))

    def low_adv(x_low, y_low, axis=-1):
        return x_low.mean(axis) - y_low.mean(axis)

    kw = dict(paired=True, vectorized=True, n_resamples=2000, random_state=seed, method="percentile")
    ch = bootstrap((a[clean], b[clean], a[low], b[low]), change, **kw).confidence_interval
    la = bootstrap((a[low], b[low]), low_adv, **kw).confidence_interval
    d = adv[low] - adv[clean]
    if not math.isfinite(ch.high):
        ch_hi = d
    else:
        ch_hi = float(ch.high)
    shrinks = ch_hi < 0
    reverses = shrinks and float(la.high) <= 0
    observed = "reverses" if reverses else "shrinks" if shrinks else "does not shrink"
    if exp.expected == "shrinks" and observed == "reverses":
        observed = "shrinks"          # a reversal is also a shrink; report the weaker claim that was asked
    reason = (f"speech-LLM − cascade accuracy {adv[clean]:+.3f} clean → {adv[low]:+.3f} at {low} "
              f"(change CI [{float(ch.low):+.3f}, {ch_hi:+.3f}]; low-SNR advantage CI [{float(la.low):+.3f}, "
              f"{float(la.high):+.3f}])")
    return _verdict(exp, observed, statistic="Δadvantage", value=d, ci=(float(ch.low), ch_hi), n=n,
                    evidence={"advantage": adv, "accuracy_llm": {c: float(v.mean()) for c, v in a.items()},
                              "accuracy_cascade": {c: float(v.mean()) for c, v in b.items()},
                              "low_advantage_ci": [float(la.low), float(la.high)]},
                    condition=f"{exp.thresholds.get('kind', 'noise')}", reason=reason)
