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

from harness import stats
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
                 controls: list[str] = (), directory: Path = CLAIMS_DIR) -> list[Expectation]:
    """The model's expectations on the given tasks: its own file's entries for them if it has a file (every entry
    is checked, also those for tasks not asked for), else the defaults' per task kind. ``controls``: control tasks
    (task metadata ``control = true``) — only a model's own file can name them; the defaults never do."""
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
        asked = {*text_sufficient, *text_insufficient, *controls}
        return [e for e in out if e.task in asked]
    for kind, tasks in (("text_sufficient", text_sufficient), ("text_insufficient", text_insufficient)):
        for task in tasks:
            for claim, entry in defaults.get("new_models", {}).get(kind, {}).items():
                out += _expectations(model, task, claim, entry, defaults, f"defaults.toml [new_models.{kind}]")
    return out


def user_task_expectations(model: str, *, text_sufficient: list[str], text_insufficient: list[str],
                           directory: Path = CLAIMS_DIR) -> list[Expectation]:
    """Expectations on task folders of a user's own for a model with its own claims file, which cannot name
    them: the file's ``[user_tasks.text_sufficient]`` / ``[user_tasks.text_insufficient]`` outcomes (none if
    absent). Models without a file already get the defaults' per-kind outcomes from :func:`expectations`."""
    directory = Path(directory)
    own = directory / f"{model}.toml"
    if not own.exists() or not (text_sufficient or text_insufficient):
        return []
    data, defaults = _read(own), load_defaults(directory)
    out = []
    for kind, tasks in (("text_sufficient", text_sufficient), ("text_insufficient", text_insufficient)):
        for task in tasks:
            for claim, entry in data.get("user_tasks", {}).get(kind, {}).items():
                out += _expectations(model, task, claim, entry, defaults, f"{own.name} [user_tasks.{kind}]")
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
    return _verdict(exp, observed, statistic="lens precision", value=mean, ci=(lo, hi), n=d["n_items"],
                    evidence={"best_layer": b, "peak_layer": peak, "band": [lo_band, hi_band],
                              "control": ctrl["mean"][i],
                              "difference_ci": [diff["ci_low"][i], diff["ci_high"][i]], "layers": layers,
                              "precision": prec["mean"], "control_curve": ctrl["mean"]},
                    reason=reason)


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
    (``effective_labels``) than ``reference`` AND their label counts differ from the reference's (χ² test of
    homogeneity, scipy, at ``alpha``)."""
    p = stats.label_homogeneity_p(erased, reference)
    e_eff, r_eff = stats.effective_labels(erased), stats.effective_labels(reference)
    degenerate = e_eff < r_eff and p < alpha
    return not degenerate, (f"erased answers use {e_eff:.1f} labels' worth vs {r_eff:.1f} for a reader without the "
                            f"words (χ² p={p:.2g})")


def collapse(exp: Expectation, *, baseline: list[bool], text_erased: list[bool], random_erased: list[bool],
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
    return _verdict(exp, observed, statistic="accuracy (text erased)", value=acc["text"], ci=(t_lo, t_hi), n=n,
                    p=p, p_method="binomial vs chance, one-sided", evidence=evidence, reason=reason)


def noise(exp: Expectation, *, llm: dict[str, list[bool]], cascade: dict[str, list[bool]], low: str,
          clean: str = "clean", seed: int = 0) -> Verdict:
    """``llm``/``cascade``: condition key → per-item correctness (same items). Advantage = acc(llm) − acc(cascade);
    the change from ``clean`` to ``low`` gets a paired bootstrap CI over items (scipy)."""
    res = stats.advantage_change(llm, cascade, low=low, clean=clean, seed=seed)
    adv, d, (ch_lo, ch_hi), (la_lo, la_hi) = res.advantage, res.change, res.change_ci, res.low_advantage_ci
    shrinks = ch_hi < 0
    reverses = shrinks and la_hi <= 0
    observed = "reverses" if reverses else "shrinks" if shrinks else "does not shrink"
    if exp.expected == "shrinks" and observed == "reverses":
        observed = "shrinks"          # a reversal is also a shrink; report the weaker claim that was asked
    reason = (f"speech-LLM − cascade accuracy {adv[clean]:+.3f} clean → {adv[low]:+.3f} at {low} "
              f"(change CI [{ch_lo:+.3f}, {ch_hi:+.3f}]; low-SNR advantage CI [{la_lo:+.3f}, {la_hi:+.3f}])")
    return _verdict(exp, observed, statistic="Δadvantage", value=d, ci=(ch_lo, ch_hi), n=res.n,
                    evidence={"advantage": adv, "accuracy_llm": res.accuracy_a, "accuracy_cascade": res.accuracy_b,
                              "low_advantage_ci": [la_lo, la_hi]},
                    condition=f"{exp.thresholds.get('kind', 'noise')}", reason=reason)

