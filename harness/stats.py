"""Agreement statistics for the cascade-equivalence suite: every verdict carries its evidence.

A nightly suite that flags a model on a bare threshold flaps; one with wrong intervals lies. So each
function here returns a frozen result with the estimate, an honest interval, n, and the method that
produced the interval, and renders as one line for assertion messages. The arithmetic is scipy /
statsmodels / sklearn; this module is glue (label encoding, a vectorised κ for the bootstrap, and
explicit answers for degenerate inputs instead of crashes or silent zeros).

- ``agreement``      Cohen's κ + paired bootstrap CI (BCa, percentile fallback), raw agreement, Gwet's AC1.
- ``ceiling``        CI of κ(speech, cascade) − κ(cascade, cascade′) from one paired bootstrap.
- ``mcnemar``        exact McNemar on paired correctness (directional bias).
- ``error_overlap``  P(same wrong answer | both wrong) with a Wilson CI.
- ``equivalence``    TOST of paired accuracies within ±margin.
- ``adjust_pvalues`` Holm / Benjamini–Hochberg across a family of tests.
- ``items_for_kappa_halfwidth`` / ``recommended_items``  power: items for a κ CI half-width.
- ``wilson_interval`` / ``binomial_p``  a proportion's interval, and its one-sided test against chance.
- ``effective_labels`` / ``label_homogeneity_p``  how many labels answers really use; χ² of two answer sets.
- ``advantage_change``  paired bootstrap CI of the change in one system's accuracy advantage (clean → low SNR).

Recommended ``--items`` (95% CI, Fleiss–Cohen–Everitt asymptotic variance, balanced classes):
±0.10 at κ≈0.8 needs 139 items on a binary task (SST-2, MUStARD), 88 with 4 classes (AG News),
81 with 5 (CommonsenseQA), 75 with 7 (MELD); ``recommended_items()`` = 139 is the default.
±0.10 at κ≈0.5 (the divergent models) needs 289 binary / 161 four-class; ±0.05 at κ≈0.8 needs
554 binary; the worst case, κ≈0, needs 385 binary for ±0.10. Skewed classes need more (the κ
paradox): binary 80/20 at κ≈0.8 needs 222 for ±0.10.
"""
from __future__ import annotations

import functools
import inspect
import math
import warnings
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar as _sm_mcnemar
from statsmodels.stats.inter_rater import cohens_kappa as _sm_cohens_kappa
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint
from statsmodels.stats.weightstats import DescrStatsW, ttost_paired

FLOAT_DIGITS = 12      # differences of k/n (n ≤ 10⁶) stay ≥ 1e-12 apart after rounding; float noise (~1e-16) does not

DEFAULT_RESAMPLES = 2000
# scipy ≥ 1.15 spells the generator `rng`; older releases (pyproject allows ≥ 1.11) `random_state`.
_RNG_KW = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"
_BOTH_CONSTANT = "both raters gave a single constant answer; κ undefined (raw agreement = {raw:.2f})"
_ONE_CONSTANT = ("rater {rater} gave one answer to every item: κ is 0 by construction and its bootstrap interval "
                 "says nothing about agreement; read raw agreement and AC1")


def _f(x: float) -> str:
    return "nan" if x is None or not np.isfinite(x) else f"{x:.2f}"


def _interval(lo: float, hi: float) -> str:
    return f"[{_f(lo)}, {_f(hi)}]"


def _method_tag(method: str, n_resamples: int, seed: int) -> str:
    label = "BCa" if method == "bca" else method
    return f"({label}, {n_resamples} resamples, seed {seed})"


# ----------------------------------------------------------------------------- input checks
def _check(*seqs: Sequence, names: Sequence[str]) -> int:
    """Same-length, non-empty inputs or a ValueError saying which is wrong."""
    lengths = [len(s) for s in seqs]
    if len(set(lengths)) != 1:
        raise ValueError("unequal lengths: " + ", ".join(f"len({m})={n}" for m, n in zip(names, lengths))
                         + "; answers must be paired item by item")
    if lengths[0] == 0:
        raise ValueError(f"empty input: {', '.join(names)} have no items")
    return lengths[0]


def _encode(*seqs: Sequence[Hashable]) -> tuple[list[np.ndarray], int]:
    """Map labels (any hashables, e.g. open-QA strings) to shared integer codes 0..k-1."""
    table: dict[Hashable, int] = {}
    codes = [np.fromiter((table.setdefault(x, len(table)) for x in s), dtype=np.intp, count=len(s))
             for s in seqs]
    return codes, len(table)


def _bools(x: Sequence, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype != bool and not np.isin(arr, (0, 1)).all():
        raise ValueError(f"{name} must be per-item correctness (booleans or 0/1)")
    return arr.astype(bool)


# ----------------------------------------------------------------------------- κ core
def _marginals(a: np.ndarray, b: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of code arrays (m, n) → per-row label counts of a and b (m, k) and raw agreement (m,)."""
    m, n = a.shape
    offsets = (np.arange(m) * k)[:, None]
    ca = np.bincount((a + offsets).ravel(), minlength=m * k).reshape(m, k)
    cb = np.bincount((b + offsets).ravel(), minlength=m * k).reshape(m, k)
    return ca, cb, (a == b).mean(axis=1)


def _kappa(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """Cohen's κ over the last axis, vectorised over any leading (resample) axes.

    NaN where both raters are constant: with no variation in either, chance agreement is either 1
    (0/0) or the 'κ = 0' of two different constants, which says nothing about agreement.
    """
    lead, n = a.shape[:-1], a.shape[-1]
    ca, cb, po = _marginals(a.reshape(-1, n), b.reshape(-1, n), k)
    pe = (ca * cb).sum(axis=1) / n**2
    both_constant = (ca.max(axis=1) == n) & (cb.max(axis=1) == n)
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = np.where(both_constant, np.nan, (po - pe) / (1 - pe))
    return kappa.reshape(lead)


def _ac1(a: np.ndarray, b: np.ndarray, q: int) -> float:
    """Gwet's AC1: chance agreement from mean prevalence, so it stays readable on skewed tasks."""
    if q < 2:
        return float("nan")
    ca, cb, po = _marginals(a[None], b[None], q)
    pi = (ca[0] + cb[0]) / (2 * a.size)
    pe = float((pi * (1 - pi)).sum()) / (q - 1)
    return float((po[0] - pe) / (1 - pe))


def _bootstrap(data, statistic, *, seed: int, n_resamples: int, confidence: float):
    """Paired BCa bootstrap; if BCa degenerates (constant or partly undefined resamples, NaN
    acceleration) fall back to the percentile interval over the defined resamples and say so."""
    n = len(data[0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = stats.bootstrap(data, statistic, paired=True, vectorized=True, method="BCa",
                              n_resamples=n_resamples, confidence_level=confidence,
                              batch=max(1, 4_000_000 // n), **{_RNG_KW: np.random.default_rng(seed)})
    lo, hi = (float(x) for x in res.confidence_interval)
    degenerate = any(issubclass(w.category, stats.DegenerateDataWarning) for w in caught)
    if np.isfinite(lo) and np.isfinite(hi) and not degenerate:
        return lo, hi, "bca", None
    dist = res.bootstrap_distribution
    ok = dist[np.isfinite(dist)]
    if ok.size == 0:
        return float("nan"), float("nan"), "none", "every bootstrap resample was undefined"
    tail = (1 - confidence) / 2
    lo, hi = (float(x) for x in np.quantile(ok, [tail, 1 - tail]))
    note = "BCa degenerate, percentile interval"
    if ok.size < dist.size:
        note += f" over the {ok.size} of {dist.size} resamples where it is defined"
    return lo, hi, "percentile", note


# ----------------------------------------------------------------------------- agreement
@dataclass(frozen=True)
class Agreement:
    """κ between two raters on the same items, with a paired bootstrap CI."""
    kappa: float
    ci_low: float
    ci_high: float
    raw: float
    ac1: float
    n: int
    n_categories: int
    method: str            # "bca" | "percentile" | "none"
    reason: str | None     # why κ is undefined, else None
    note: str | None       # how the interval was obtained when not plain BCa
    seed: int
    n_resamples: int
    confidence: float = 0.95
    constant_rater: str | None = None   # "a" or "b" when exactly that rater gave one answer to every item

    def __str__(self) -> str:
        if self.reason:
            return f"κ=nan ({self.reason}) AC1={_f(self.ac1)} n={self.n}"
        if self.constant_rater:
            return (f"κ={_f(self.kappa)} ({_ONE_CONSTANT.format(rater=self.constant_rater)}) raw={_f(self.raw)} "
                    f"AC1={_f(self.ac1)} n={self.n}")
        s = (f"κ={_f(self.kappa)} {_interval(self.ci_low, self.ci_high)} raw={_f(self.raw)} "
             f"AC1={_f(self.ac1)} n={self.n} {_method_tag(self.method, self.n_resamples, self.seed)}")
        return s + (f"; {self.note}" if self.note else "")


def agreement(a: Sequence[Hashable], b: Sequence[Hashable], *, seed: int = 0,
              n_resamples: int = DEFAULT_RESAMPLES, confidence: float = 0.95,
              n_categories: int | None = None) -> Agreement:
    """Cohen's κ of two raters' categorical answers on the same items, with a seeded paired BCa CI.

    ``n_categories`` (e.g. the task's option count) only affects AC1; by default it is the number of
    distinct labels seen. Answers are compared with ``==``: normalise open-QA strings first.
    """
    n = _check(a, b, names=("a", "b"))
    (ca, cb), k = _encode(a, b)
    q = max(k, n_categories or 0)
    raw = float((ca == cb).mean())
    kappa = float(_kappa(ca, cb, k))
    common = dict(raw=raw, ac1=_ac1(ca, cb, q), n=n, n_categories=q, seed=seed,
                  n_resamples=n_resamples, confidence=confidence)
    if np.isnan(kappa):
        return Agreement(kappa, math.nan, math.nan, method="none", reason=_BOTH_CONSTANT.format(raw=raw),
                         note=None, **common)
    lo, hi, method, note = _bootstrap((ca, cb), lambda x, y, axis=-1: _kappa(x, y, k), seed=seed,
                                      n_resamples=n_resamples, confidence=confidence)
    constant = [name for name, codes in (("a", ca), ("b", cb)) if np.unique(codes).size == 1]
    return Agreement(kappa, lo, hi, method=method, reason=None, note=note,
                     constant_rater=constant[0] if constant else None, **common)


@dataclass(frozen=True)
class CeilingComparison:
    """κ(model, cascade) − κ(cascade, cascade′): how far the model sits below the ASR-swap ceiling."""
    delta: float
    ci_low: float
    ci_high: float
    kappa_model: float
    kappa_ceiling: float
    n: int
    method: str
    reason: str | None
    note: str | None
    seed: int
    n_resamples: int

    def __str__(self) -> str:
        head = (f"Δκ={_f(self.delta)} {_interval(self.ci_low, self.ci_high)} "
                f"(model {_f(self.kappa_model)} vs ceiling {_f(self.kappa_ceiling)}) n={self.n}")
        if self.reason:
            return f"{head}: {self.reason}"
        tail = f" {_method_tag(self.method, self.n_resamples, self.seed)}"
        return head + tail + (f"; {self.note}" if self.note else "")


def ceiling(model: Sequence[Hashable], cascade: Sequence[Hashable], cascade_alt: Sequence[Hashable], *,
            seed: int = 0, n_resamples: int = DEFAULT_RESAMPLES, confidence: float = 0.95) -> CeilingComparison:
    """CI of κ(model, cascade) − κ(cascade, cascade_alt) from one paired bootstrap over items.

    ``cascade_alt`` is the same backbone behind another ASR (the paper's Cascade-W control): their κ
    is the agreement two text pipelines reach, so the model is 'at ceiling' if the CI covers 0.
    Resampling the three answer lists together keeps the two κ's correlation in the interval.
    """
    n = _check(model, cascade, cascade_alt, names=("model", "cascade", "cascade_alt"))
    (m, c, w), k = _encode(model, cascade, cascade_alt)
    km, kc = float(_kappa(m, c, k)), float(_kappa(c, w, k))
    common = dict(kappa_model=km, kappa_ceiling=kc, n=n, seed=seed, n_resamples=n_resamples)
    if np.isnan(km) or np.isnan(kc):
        which = "κ(model, cascade)" if np.isnan(km) else "κ(cascade, cascade′)"
        return CeilingComparison(math.nan, math.nan, math.nan, method="none", note=None,
                                 reason=f"{which} undefined: both raters constant", **common)

    def delta(x, y, z, axis=-1):
        return _kappa(x, y, k) - _kappa(y, z, k)

    lo, hi, method, note = _bootstrap((m, c, w), delta, seed=seed, n_resamples=n_resamples,
                                      confidence=confidence)
    return CeilingComparison(km - kc, lo, hi, method=method, reason=None, note=note, **common)


# ----------------------------------------------------------------------------- correctness level
@dataclass(frozen=True)
class McNemar:
    """Exact McNemar on paired correctness: b = only A right, c = only B right."""
    b: int
    c: int
    statistic: float
    p_value: float
    n: int

    def __str__(self) -> str:
        lean = "A better" if self.b > self.c else "B better" if self.c > self.b else "no lean"
        return f"McNemar exact p={self.p_value:.3g} (only A right {self.b}, only B right {self.c}; {lean}) n={self.n}"


def mcnemar(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> McNemar:
    """Exact (binomial) McNemar test: does one system win the discordant items more often?"""
    n = _check(correct_a, correct_b, names=("correct_a", "correct_b"))
    x, y = _bools(correct_a, "correct_a"), _bools(correct_b, "correct_b")
    b, c = int((x & ~y).sum()), int((~x & y).sum())
    table = [[int((x & y).sum()), b], [c, int((~x & ~y).sum())]]
    if b + c == 0:  # no discordant pair: nothing to test, not evidence of a difference
        return McNemar(b, c, 0.0, 1.0, n)
    res = _sm_mcnemar(table, exact=True)
    return McNemar(b, c, float(res.statistic), float(res.pvalue), n)


@dataclass(frozen=True)
class ErrorOverlap:
    """P(same wrong answer | both wrong), with a Wilson CI; NaN with a reason when none are both wrong."""
    overlap: float
    ci_low: float
    ci_high: float
    n_same_wrong: int
    n_both_wrong: int
    n: int
    reason: str | None = None

    def __str__(self) -> str:
        if self.reason:
            return f"error overlap undefined: {self.reason} n={self.n}"
        return (f"error overlap={_f(self.overlap)} {_interval(self.ci_low, self.ci_high)} "
                f"({self.n_same_wrong}/{self.n_both_wrong} both-wrong items share the answer, Wilson) n={self.n}")


def error_overlap(a: Sequence[Hashable], b: Sequence[Hashable], gold: Sequence[Hashable], *,
                  confidence: float = 0.95) -> ErrorOverlap:
    """Among items both systems get wrong, the share where they give the same wrong answer."""
    n = _check(a, b, gold, names=("a", "b", "gold"))
    both_wrong = [(x, y) for x, y, g in zip(a, b, gold) if x != g and y != g]
    m, same = len(both_wrong), sum(x == y for x, y in both_wrong)
    if m == 0:
        return ErrorOverlap(math.nan, math.nan, math.nan, 0, 0, n, reason="no item is wrong for both")
    lo, hi = proportion_confint(same, m, alpha=1 - confidence, method="wilson")
    return ErrorOverlap(same / m, float(lo), float(hi), same, m, n)


@dataclass(frozen=True)
class Equivalence:
    """TOST: are paired accuracies within ±margin? ``ci`` is the (1 − 2α) CI of acc_a − acc_b."""
    diff: float
    ci_low: float
    ci_high: float
    margin: float
    p_value: float
    equivalent: bool
    n: int
    alpha: float = 0.05
    note: str | None = None

    def __str__(self) -> str:
        verdict = "equivalent" if self.equivalent else "not shown equivalent"
        s = (f"Δacc={self.diff:+.3f} [{self.ci_low:+.3f}, {self.ci_high:+.3f}] margin ±{self.margin:g} "
             f"TOST p={self.p_value:.3g} → {verdict} (α={self.alpha:g}) n={self.n}")
        return s + (f"; {self.note}" if self.note else "")


def equivalence(correct_a: Sequence[bool], correct_b: Sequence[bool], margin: float, *,
                alpha: float = 0.05) -> Equivalence:
    """TOST of paired accuracies via ``ttost_paired`` on the per-item 0/1 differences.

    The paired t on differences uses the item pairing (the variance comes from discordant items
    only) and is accurate at the n this suite runs (≥ 50). When every difference is identical the t
    statistic is undefined; then |Δacc| ≤ discordance rate, and an exact bound replaces it: with no
    discordant item the p-value is (1 − margin)^n, the chance of none under discordance ≥ margin.
    """
    if not 0 < margin < 1:
        raise ValueError(f"margin must be in (0, 1), got {margin}")
    n = _check(correct_a, correct_b, names=("correct_a", "correct_b"))
    x = _bools(correct_a, "correct_a").astype(float)
    y = _bools(correct_b, "correct_b").astype(float)
    d = x - y
    diff = float(d.mean())
    if np.ptp(d) == 0:
        if diff != 0:
            return Equivalence(diff, diff, diff, margin, 1.0, False, n, alpha,
                               note="every item differs the same way")
        u = 1 - alpha ** (1 / n)  # one-sided exact upper bound on the discordance rate
        p = (1 - margin) ** n
        return Equivalence(0.0, -u, u, margin, p, p < alpha, n, alpha,
                           note="no discordant item: exact bound instead of t")
    p, _, _ = ttost_paired(x, y, -margin, margin)
    lo, hi = DescrStatsW(d).tconfint_mean(alpha=2 * alpha)
    return Equivalence(diff, float(lo), float(hi), margin, float(p), bool(p < alpha), n, alpha)


def adjust_pvalues(pvals: Sequence[float], method: str = "fdr_bh") -> np.ndarray:
    """Family-wise (``"holm"``) or false-discovery-rate (``"fdr_bh"``) adjusted p-values."""
    method = {"bh": "fdr_bh"}.get(method, method)
    if method not in ("fdr_bh", "holm"):
        raise ValueError(f"method must be 'fdr_bh' or 'holm', got {method!r}")
    p = np.asarray(pvals, dtype=float)
    if p.size == 0:
        return p
    if not ((p >= 0) & (p <= 1)).all():
        raise ValueError("p-values must lie in [0, 1] (NaN is not a p-value)")
    return multipletests(p, method=method)[1]


# ----------------------------------------------------------------------------- power
def items_for_kappa_halfwidth(halfwidth: float, *, kappa: float = 0.8, n_categories: int = 2,
                              marginals: Sequence[float] | None = None, confidence: float = 0.95) -> int:
    """Items needed for a κ CI of ±halfwidth, from the large-sample variance (Fleiss, Cohen & Everitt
    1969, as in statsmodels ``cohens_kappa``) of a population with both raters on ``marginals``
    (default: balanced) and true κ = ``kappa``: P_ij = (1 − κ)·p_i·p_j + κ·p_i·[i = j]."""
    p = np.full(n_categories, 1 / n_categories) if marginals is None else np.asarray(marginals, float)
    if p.size < 2 or (p <= 0).any() or not math.isclose(p.sum(), 1):
        raise ValueError("marginals must be ≥ 2 positive probabilities summing to 1")
    if not 0 < halfwidth < 1 or not 0 <= kappa < 1:
        raise ValueError("need 0 < halfwidth < 1 and 0 ≤ kappa < 1")
    table = (1 - kappa) * np.outer(p, p) + kappa * np.diag(p)
    sd_one = _sm_cohens_kappa(table * 1e6).std_kappa * 1e3  # statsmodels' SE scales as 1/√n
    z = stats.norm.ppf(0.5 + confidence / 2)
    return math.ceil((z * sd_one / halfwidth) ** 2)


def recommended_items(halfwidth: float = 0.10, kappa: float = 0.8, n_categories: int = 2) -> int:
    """Default ``--items``: ±0.10 at κ≈0.8 on a balanced binary task (the hardest text-sufficient
    case), enough to tell a model at κ≈0.8 from the 0.93–0.98 ASR-swap ceiling."""
    return items_for_kappa_halfwidth(halfwidth, kappa=kappa, n_categories=n_categories)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (statsmodels): what the claims use for accuracies."""
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(successes, n, alpha=1 - confidence, method="wilson")
    return float(lo), float(hi)


def items_to_separate_means(gap: float, *, sd: float = 0.5, confidence: float = 0.95) -> int:
    """Items for two per-item means ``gap`` apart to have non-overlapping normal-approximation CIs, each
    ±z·sd/√n: n = ⌈(2·z·sd/gap)²⌉. ``sd`` = 0.5 is the largest a score in [0, 1] can have, so the size holds
    whatever the spread (e.g. the lens's per-item precision against its mismatched control)."""
    if not 0 < gap <= 1 or not 0 < sd <= 0.5:
        raise ValueError(f"need 0 < gap ≤ 1 and 0 < sd ≤ 0.5 (scores in [0, 1]); got gap={gap}, sd={sd}")
    z = stats.norm.ppf(0.5 + confidence / 2)
    return math.ceil((2 * z * sd / gap) ** 2)


def binomial_p(successes: int, n: int, p: float, alternative: str = "greater") -> float:
    """Exact binomial test of a proportion against ``p`` (scipy): e.g. accuracy against chance, one-sided."""
    return float(stats.binomtest(successes, n, p, alternative=alternative).pvalue)


def effective_labels(choices: Sequence) -> float:
    """exp(Shannon entropy) of the answers' label distribution: how many labels the answers really use
    (1 = one constant answer, K = all K labels equally)."""
    _, counts = np.unique(np.asarray(choices, dtype=object).astype(str), return_counts=True)
    p = counts / counts.sum()
    return float(np.exp(-(p * np.log(p)).sum()))


def label_homogeneity_p(a: Sequence, b: Sequence) -> float:
    """p of the χ² test of homogeneity (scipy) between two sets of answers' label counts; 1.0 when together they
    use one label (nothing to compare)."""
    labels = sorted({str(x) for x in [*a, *b]})
    table = np.array([[sum(str(x) == lab for x in side) for lab in labels] for side in (a, b)])
    table = table[:, table.sum(axis=0) > 0]
    return float(stats.chi2_contingency(table).pvalue) if table.shape[1] > 1 else 1.0


@dataclass(frozen=True)
class AdvantageChange:
    """System A's accuracy advantage over B (``advantage``: condition → acc(A) − acc(B)) and how it changed from
    clean to low (``change``, with a paired bootstrap CI over items), plus the low condition's advantage CI."""

    accuracy_a: dict
    accuracy_b: dict
    advantage: dict
    change: float
    change_ci: tuple[float, float]
    low_advantage_ci: tuple[float, float]
    n: int


def advantage_change(a: dict, b: dict, *, low: str, clean: str = "clean", seed: int = 0,
                     n_resamples: int = DEFAULT_RESAMPLES) -> AdvantageChange:
    """``a``/``b``: condition → per-item correctness of the two systems on the same items. Percentile paired
    bootstrap (scipy, seeded ``random_state`` so that a rerun gives the same interval); a non-finite upper bound
    of the change (every resample equal) falls back to the point estimate."""
    a = {c: np.asarray(v, float) for c, v in a.items()}
    b = {c: np.asarray(v, float) for c, v in b.items()}
    adv = {c: float(a[c].mean() - b[c].mean()) for c in a}
    acc_a, acc_b = {c: float(v.mean()) for c, v in a.items()}, {c: float(v.mean()) for c, v in b.items()}

    def change(x_clean, y_clean, x_low, y_low, axis=-1):
        return (x_low.mean(axis) - y_low.mean(axis)) - (x_clean.mean(axis) - y_clean.mean(axis))

    def low_adv(x_low, y_low, axis=-1):
        return x_low.mean(axis) - y_low.mean(axis)

    kw = dict(paired=True, vectorized=True, n_resamples=n_resamples, random_state=seed, method="percentile")
    ch = stats.bootstrap((a[clean], b[clean], a[low], b[low]), change, **kw).confidence_interval
    la = stats.bootstrap((a[low], b[low]), low_adv, **kw).confidence_interval
    d = adv[low] - adv[clean]
    ch_hi = float(ch.high) if math.isfinite(ch.high) else d
    # Accuracies are counts / n, so a bound that should be 0 comes out as ±1e-16 (0.35 − 0.5 + 0.15): rounded, a
    # zero stays zero and a strict "< 0" is decided by the data, not by float rounding.
    r = functools.partial(round, ndigits=FLOAT_DIGITS)
    return AdvantageChange(acc_a, acc_b, {c: r(v) for c, v in adv.items()}, r(d), (r(float(ch.low)), r(ch_hi)),
                           (r(float(la.low)), r(float(la.high))), len(a[clean]))
