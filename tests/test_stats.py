"""Unit tests for harness.stats: κ properties, agreement with reference implementations, honest
handling of degenerate inputs, seeded reproducibility, and the correctness-level tests."""
import gc
import math
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings, strategies as st
from scipy.stats import binomtest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import cohens_kappa
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint
from statsmodels.stats.weightstats import ttost_paired

from harness.stats import (
    Agreement, adjust_pvalues, advantage_change, agreement, binomial_p, ceiling, effective_labels, equivalence,
    error_overlap, items_for_kappa_halfwidth, label_homogeneity_p, mcnemar, recommended_items, wilson_interval,
)

FAST = settings(max_examples=40, deadline=None)
LABELS = ["World", "Sports", "Business", "Sci/Tech", "other"]


@st.composite
def rated(draw, min_n=2, max_n=80, non_constant=False):
    """Two raters' answers on the same items: b copies a with a drawn share of random answers."""
    k = draw(st.integers(2, len(LABELS)))
    n = draw(st.integers(min_n, max_n))
    a = draw(st.lists(st.sampled_from(LABELS[:k]), min_size=n, max_size=n))
    if non_constant:
        assume(len(set(a)) > 1)
    noise = draw(st.lists(st.tuples(st.booleans(), st.sampled_from(LABELS[:k])), min_size=n, max_size=n))
    b = [y if flip else x for x, (flip, y) in zip(a, noise)]
    return a, b


def simulate(n, kappa_mix=0.7, k=3, seed=0, p=None):
    """Answers from two raters agreeing on a `kappa_mix` share and otherwise independent."""
    rng = np.random.default_rng(seed)
    a = rng.choice(k, size=n, p=p)
    b = np.where(rng.random(n) < kappa_mix, a, rng.choice(k, size=n, p=p))
    return [f"c{x}" for x in a], [f"c{x}" for x in b]


def crosstab(a, b):
    return pd.crosstab(pd.Categorical(a, categories=sorted(set(a) | set(b))),
                       pd.Categorical(b, categories=sorted(set(a) | set(b))), dropna=False).to_numpy()


# ------------------------------------------------------------------------------- κ properties
@FAST
@given(rated(non_constant=True))
def test_kappa_is_one_for_identical_non_constant_answers(ab):
    a, _ = ab
    r = agreement(a, a, n_resamples=200)
    assert r.kappa == 1.0 and r.raw == 1.0 and r.ac1 == pytest.approx(1.0)
    assert r.ci_low == r.ci_high == 1.0 and r.reason is None


@FAST
@given(rated())
def test_kappa_symmetric_in_raters(ab):
    a, b = ab
    x, y = agreement(a, b, n_resamples=100), agreement(b, a, n_resamples=100)
    for field in ("kappa", "raw", "ac1"):
        assert getattr(x, field) == pytest.approx(getattr(y, field), abs=1e-12, nan_ok=True)


@FAST
@given(rated(), st.randoms(use_true_random=False))
def test_kappa_invariant_to_item_order(ab, rnd):
    a, b = ab
    order = list(range(len(a)))
    rnd.shuffle(order)
    x = agreement(a, b, n_resamples=100)
    y = agreement([a[i] for i in order], [b[i] for i in order], n_resamples=100)
    for field in ("kappa", "raw", "ac1"):
        assert getattr(x, field) == pytest.approx(getattr(y, field), abs=1e-12, nan_ok=True)


@FAST
@given(rated(), st.permutations(range(100, 100 + len(LABELS))))
def test_kappa_invariant_to_label_renaming(ab, new_names):
    a, b = ab
    rename = dict(zip(LABELS, new_names))
    x = agreement(a, b, n_resamples=200)
    y = agreement([rename[v] for v in a], [rename[v] for v in b], n_resamples=200)
    # labels are coded by first appearance, so a renaming leaves even the bootstrap untouched
    assert str(x) == str(y)
    assert (x.kappa, x.ci_low, x.ci_high) == pytest.approx((y.kappa, y.ci_low, y.ci_high), nan_ok=True)


@FAST
@given(rated(min_n=1))
def test_kappa_bounded_and_undefined_only_when_both_raters_constant(ab):
    a, b = ab
    r = agreement(a, b, n_resamples=100)
    if len(set(a)) == 1 and len(set(b)) == 1:
        assert math.isnan(r.kappa) and "constant" in r.reason
    else:
        assert -1 - 1e-12 <= r.kappa <= 1 + 1e-12 and r.reason is None


@settings(max_examples=30, deadline=None)
@given(rated(min_n=20, max_n=120, non_constant=True), st.integers(0, 2**16))
def test_ci_contains_estimate(ab, seed):
    a, b = ab
    r = agreement(a, b, seed=seed, n_resamples=500)
    assert r.ci_low - 1e-9 <= r.kappa <= r.ci_high + 1e-9, str(r)


@settings(max_examples=15, deadline=None)
@given(rated(min_n=20, max_n=60, non_constant=True))
def test_ci_narrows_as_n_grows(ab):
    a, b = ab
    small = agreement(a, b, n_resamples=500)
    big = agreement(a * 4, b * 4, n_resamples=500)  # same κ, four times the items
    assert big.kappa == pytest.approx(small.kappa)
    width_small, width_big = small.ci_high - small.ci_low, big.ci_high - big.ci_low
    assert width_big <= width_small + 1e-9
    if width_small > 0.05:
        assert width_big < 0.8 * width_small


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 5), st.integers(40, 200), st.integers(0, 2**16))
def test_flipping_a_growing_share_lowers_kappa(k, n, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, k, n)
    assume(np.bincount(a, minlength=k).min() >= n / (3 * k))  # not the skewed κ-paradox corner
    order = rng.permutation(n)
    shift = rng.integers(1, k, n)  # a wrong answer for every item, fixed across shares
    kappas = []
    for share in (0.0, 0.2, 0.4, 0.6, 0.8):
        b = a.copy()
        idx = order[: int(share * n)]
        b[idx] = (a[idx] + shift[idx]) % k
        kappas.append(agreement(a, b, n_resamples=50).kappa)
    assert kappas[0] == 1.0
    assert all(x > y for x, y in zip(kappas, kappas[1:])), kappas


# ------------------------------------------------------------------------------- references
@settings(max_examples=60, deadline=None)
@given(rated(min_n=1))
def test_kappa_equals_sklearn(ab):
    a, b = ab
    r = agreement(a, b, n_resamples=50)
    if len(set(a)) == 1 and len(set(b)) == 1:
        assert math.isnan(r.kappa)  # sklearn says 0 or nan here; we refuse to report a number
    else:
        assert r.kappa == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)
        assert r.raw == pytest.approx(np.mean(np.asarray(a) == np.asarray(b)))


@pytest.mark.parametrize("n,mix,k,seed", [(500, 0.7, 3, 1), (600, 0.5, 2, 2), (1000, 0.85, 4, 3), (800, 0.3, 5, 4)])
def test_bootstrap_ci_matches_statsmodels_asymptotic_ci(n, mix, k, seed):
    a, b = simulate(n, mix, k, seed)
    r = agreement(a, b, seed=seed)
    ref = cohens_kappa(crosstab(a, b))
    assert r.kappa == pytest.approx(ref.kappa, abs=1e-12)
    assert r.method == "bca"
    assert abs(r.ci_low - ref.kappa_low) < 0.02 and abs(r.ci_high - ref.kappa_upp) < 0.02, (
        f"{r} vs asymptotic [{ref.kappa_low:.3f}, {ref.kappa_upp:.3f}]")


def test_ac1_matches_gwet_on_kappa_paradox_table():
    # 90/10 prevalence: high raw agreement, low κ; AC1 stays near raw agreement.
    a = ["yes"] * 85 + ["no"] * 5 + ["yes"] * 5 + ["no"] * 5
    b = ["yes"] * 85 + ["yes"] * 5 + ["no"] * 5 + ["no"] * 5
    r = agreement(a, b, n_resamples=200)
    pi_yes = 0.9
    pe = 2 * pi_yes * (1 - pi_yes)  # Gwet (2008), q = 2
    assert r.raw == pytest.approx(0.9)
    assert r.ac1 == pytest.approx((0.9 - pe) / (1 - pe))
    assert r.kappa == pytest.approx(cohen_kappa_score(a, b)) and r.kappa < 0.5 < r.ac1


def hand_exact_mcnemar(b, c):
    m = b + c
    tail = sum(math.comb(m, i) for i in range(min(b, c) + 1)) / 2**m
    return min(1.0, 2 * tail)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 12), st.integers(0, 12), st.integers(0, 8), st.integers(0, 8))
def test_exact_mcnemar_equals_hand_computed_binomial(b, c, both_right, both_wrong):
    assume(b + c + both_right + both_wrong > 0)
    x = [True] * both_right + [True] * b + [False] * c + [False] * both_wrong
    y = [True] * both_right + [False] * b + [True] * c + [False] * both_wrong
    r = mcnemar(x, y)
    assert (r.b, r.c, r.n) == (b, c, len(x))
    assert r.p_value == pytest.approx(hand_exact_mcnemar(b, c), rel=1e-12)
    if b + c:
        assert r.p_value == pytest.approx(binomtest(b, b + c, 0.5).pvalue, rel=1e-12)


def test_mcnemar_small_table_by_hand():
    # only A right on 8 items, only B right on 1: p = 2 * (1 + 9) / 2**9
    r = mcnemar([1] * 8 + [0] + [1] * 5, [0] * 8 + [1] + [1] * 5)
    assert (r.b, r.c) == (8, 1)
    assert r.p_value == pytest.approx(20 / 512)
    assert "A better" in str(r)


def hand_bh(p):
    m, order = len(p), np.argsort(p)
    scaled = np.asarray(p)[order] * m / np.arange(1, m + 1)
    adj = np.minimum(1, np.minimum.accumulate(scaled[::-1])[::-1])
    out = np.empty(m)
    out[order] = adj
    return out


def hand_holm(p):
    m, order = len(p), np.argsort(p)
    scaled = np.asarray(p)[order] * (m - np.arange(m))
    adj = np.minimum(1, np.maximum.accumulate(scaled))
    out = np.empty(m)
    out[order] = adj
    return out


@contextmanager
def frozen_heap():
    """statsmodels' Holm branch calls gc.collect(), which walks every object the process holds: late in a full run
    (models, tokenizers, tasks of earlier test files) that is ~0.3 s a call, two calls an example. Frozen, the
    objects that existed before are left out of the walk; the arithmetic under test is the same."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@FAST
@given(st.lists(st.floats(0, 1), min_size=1, max_size=30))
def test_bh_and_holm_equal_statsmodels_and_hand(p):
    with frozen_heap():
        for method, hand in (("fdr_bh", hand_bh), ("holm", hand_holm)):
            got = adjust_pvalues(p, method)
            np.testing.assert_allclose(got, multipletests(p, method=method)[1], rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(got, hand(p), rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(adjust_pvalues(p, "bh"), adjust_pvalues(p))


def test_adjust_pvalues_rejects_bad_input():
    assert adjust_pvalues([]).size == 0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        adjust_pvalues([0.1, float("nan")])
    with pytest.raises(ValueError, match="method"):
        adjust_pvalues([0.1], "bonferroni-ish")


# ------------------------------------------------------------------------------- reproducibility
def test_same_seed_identical_ci_and_different_seed_close():
    a, b = simulate(300, 0.6, 3, seed=7)
    r0, r0_again, r1 = agreement(a, b, seed=0), agreement(a, b, seed=0), agreement(a, b, seed=1)
    assert (r0.ci_low, r0.ci_high) == (r0_again.ci_low, r0_again.ci_high)
    assert (r0.ci_low, r0.ci_high) != (r1.ci_low, r1.ci_high)
    assert abs(r0.ci_low - r1.ci_low) < 0.02 and abs(r0.ci_high - r1.ci_high) < 0.02
    assert r1.seed == 1 and "seed 1" in str(r1)


def test_open_qa_strings_with_many_distinct_answers():
    a = [f"answer {i}" for i in range(300)]
    b = [x if i % 4 else "I don't know" for i, x in enumerate(a)]
    r = agreement(a, b)
    assert r.kappa == pytest.approx(cohen_kappa_score(a, b)) and r.ci_low < r.kappa < r.ci_high


# ------------------------------------------------------------------------------- degenerate inputs
@pytest.mark.parametrize("fn,args", [
    (agreement, ([], [])),
    (ceiling, ([], [], [])),
    (mcnemar, ([], [])),
    (error_overlap, ([], [], [])),
    (equivalence, ([], [], 0.05)),
])
def test_empty_input_is_a_clear_error(fn, args):
    with pytest.raises(ValueError, match="empty"):
        fn(*args)


@pytest.mark.parametrize("fn,args", [
    (agreement, (["a", "b"], ["a"])),
    (ceiling, (["a", "b"], ["a", "b"], ["a"])),
    (mcnemar, ([True, False], [True])),
    (error_overlap, (["a"], ["a"], ["a", "b"])),
    (equivalence, ([True], [True, False], 0.05)),
])
def test_unequal_lengths_is_a_clear_error(fn, args):
    with pytest.raises(ValueError, match="unequal lengths"):
        fn(*args)


def test_both_raters_constant_is_undefined_not_zero():
    same = agreement(["pos"] * 40, ["pos"] * 40)
    assert math.isnan(same.kappa) and math.isnan(same.ci_low) and math.isnan(same.ci_high)
    assert same.reason == "both raters gave a single constant answer; κ undefined (raw agreement = 1.00)"
    assert "κ=nan" in str(same) and "undefined" in str(same)
    different = agreement(["pos"] * 40, ["neg"] * 40)
    assert math.isnan(different.kappa) and "raw agreement = 0.00" in different.reason


def test_one_rater_constant_gives_kappa_zero_with_an_interval():
    r = agreement(["pos"] * 30, ["pos", "neg", "neg"] * 10, n_resamples=300)
    assert r.kappa == pytest.approx(0.0) and r.reason is None
    assert r.ci_low <= 0 <= r.ci_high


@pytest.mark.parametrize("which", ["a", "b"])
def test_one_constant_rater_is_flagged_and_its_interval_not_shown(which):
    constant, varying = ["pos"] * 30, ["pos", "neg", "neg"] * 10
    a, b = (constant, varying) if which == "a" else (varying, constant)
    r = agreement(a, b, n_resamples=300)
    assert r.kappa == pytest.approx(cohen_kappa_score(a, b)) == pytest.approx(0.0)
    assert r.constant_rater == which
    assert f"rater {which} gave one answer to every item: κ is 0 by construction" in str(r)
    assert "[" not in str(r)                     # no interval that would look precise
    assert agreement(varying, varying[::-1], n_resamples=300).constant_rater is None


def test_tiny_sample_falls_back_to_percentile_and_says_so():
    r = agreement(["x", "y", "x"], ["x", "y", "y"], n_resamples=500)
    assert r.method == "percentile" and "percentile" in r.note and r.ci_low <= r.kappa <= r.ci_high
    assert "percentile" in str(r)


def test_str_is_one_readable_line():
    a, b = simulate(400, 0.7, 3, seed=5)
    r = agreement(a, b)
    line = str(r)
    assert "\n" not in line
    assert line.startswith(f"κ={r.kappa:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}] raw={r.raw:.2f} AC1=")
    assert line.endswith("n=400 (BCa, 2000 resamples, seed 0)")
    assert isinstance(r, Agreement)
    with pytest.raises(AttributeError):
        r.kappa = 0.0  # frozen


# ------------------------------------------------------------------------------- ceiling
def test_ceiling_delta_and_paired_ci():
    rng = np.random.default_rng(11)
    n, k = 400, 4
    cascade = rng.integers(0, k, n)
    alt = np.where(rng.random(n) < 0.95, cascade, rng.integers(0, k, n))    # ASR swap: near ceiling
    model = np.where(rng.random(n) < 0.70, cascade, rng.integers(0, k, n))  # clearly below it
    r = ceiling(model, cascade, alt)
    assert r.kappa_model == pytest.approx(cohen_kappa_score(model, cascade))
    assert r.kappa_ceiling == pytest.approx(cohen_kappa_score(cascade, alt))
    assert r.delta == pytest.approx(r.kappa_model - r.kappa_ceiling)
    assert r.ci_low <= r.delta <= r.ci_high < 0 and r.method == "bca"
    assert "\n" not in str(r) and "Δκ=" in str(r)


def test_ceiling_is_zero_when_model_answers_like_the_control():
    a, b = simulate(200, 0.8, 3, seed=2)
    r = ceiling(a, b, a)  # κ(a, b) − κ(b, a) ≡ 0 in every resample
    assert r.delta == pytest.approx(0, abs=1e-12)
    assert r.ci_low == pytest.approx(0, abs=1e-12) and r.ci_high == pytest.approx(0, abs=1e-12)


def test_ceiling_undefined_when_a_pair_is_constant():
    r = ceiling(["x", "y", "x"], ["x"] * 3, ["x"] * 3)
    assert math.isnan(r.delta) and "cascade′" in r.reason


# ------------------------------------------------------------------------------- error overlap
def test_error_overlap_counts_and_wilson_ci():
    gold = ["a"] * 10
    x = ["a"] * 2 + ["b"] * 6 + ["c"] * 2
    y = ["a"] * 2 + ["b"] * 8  # both wrong on the last 8; the same wrong answer on 6 of them
    r = error_overlap(x, y, gold)
    assert (r.n_same_wrong, r.n_both_wrong, r.n) == (6, 8, 10)
    assert r.overlap == pytest.approx(0.75)
    lo, hi = proportion_confint(6, 8, alpha=0.05, method="wilson")
    assert (r.ci_low, r.ci_high) == pytest.approx((lo, hi))
    assert "6/8" in str(r)


def test_error_overlap_undefined_without_shared_errors():
    r = error_overlap(["a", "b"], ["a", "a"], ["a", "a"])
    assert math.isnan(r.overlap) and r.n_both_wrong == 0 and "no item" in r.reason


# ------------------------------------------------------------------------------- TOST
def test_tost_matches_statsmodels_and_decides():
    rng = np.random.default_rng(4)
    n = 600
    a = rng.random(n) < 0.8
    b = np.where(rng.random(n) < 0.93, a, ~a)
    r = equivalence(a, b, margin=0.05)
    p_ref = ttost_paired(a.astype(float), b.astype(float), -0.05, 0.05)[0]
    assert r.p_value == pytest.approx(p_ref)
    assert r.diff == pytest.approx(a.mean() - b.mean())
    assert r.ci_low < r.diff < r.ci_high
    assert r.equivalent == (-0.05 < r.ci_low and r.ci_high < 0.05)  # TOST ⇔ (1−2α) CI inside margin
    worse = np.where(rng.random(n) < 0.15, False, a)  # B loses ~12 points
    assert not equivalence(a, worse, margin=0.05).equivalent


def test_tost_without_discordant_items_uses_exact_bound():
    r = equivalence([True, False] * 50, [True, False] * 50, margin=0.05)
    assert r.diff == 0 and r.p_value == pytest.approx(0.95**100) and r.equivalent
    assert not equivalence([True] * 20, [True] * 20, margin=0.05).equivalent  # 0.95**20 ≈ 0.36
    assert not equivalence([True] * 20, [False] * 20, margin=0.05).equivalent
    with pytest.raises(ValueError, match="margin"):
        equivalence([True], [True], margin=0)
    with pytest.raises(ValueError, match="correctness"):
        equivalence(["a"], ["b"], margin=0.1)


# ------------------------------------------------------------------------------- power
def test_items_for_halfwidth_matches_simulated_variance():
    n = items_for_kappa_halfwidth(0.10, kappa=0.8, n_categories=2)
    assert n == recommended_items() == 139
    rng = np.random.default_rng(0)
    p = np.array([0.5, 0.5])
    table = 0.2 * np.outer(p, p) + 0.8 * np.diag(p)
    draws = []
    for _ in range(400):  # sampling distribution of κ̂ at the recommended n
        counts = rng.multinomial(n, table.ravel()).reshape(2, 2)
        draws.append(cohens_kappa(counts).kappa)
    half = 1.96 * np.std(draws)
    assert 0.085 < half < 0.115


def test_items_for_halfwidth_monotone_and_validated():
    assert items_for_kappa_halfwidth(0.05) > items_for_kappa_halfwidth(0.10) > items_for_kappa_halfwidth(0.20)
    assert items_for_kappa_halfwidth(0.1, kappa=0.5) > items_for_kappa_halfwidth(0.1, kappa=0.9)
    assert items_for_kappa_halfwidth(0.1, marginals=[0.8, 0.2]) > items_for_kappa_halfwidth(0.1)
    with pytest.raises(ValueError):
        items_for_kappa_halfwidth(0.1, marginals=[0.5, 0.6])
    with pytest.raises(ValueError):
        items_for_kappa_halfwidth(0)


def test_items_to_separate_means_gives_disjoint_intervals_at_that_size_and_not_below():
    from harness import stats
    import math as _m

    from scipy import stats as sps

    z = sps.norm.ppf(0.975)
    for gap in (0.2, 0.4, 0.7):
        n = stats.items_to_separate_means(gap)
        assert 2 * z * 0.5 / _m.sqrt(n) <= gap < 2 * z * 0.5 / _m.sqrt(n - 1)
    assert stats.items_to_separate_means(0.4) == 25
    with pytest.raises(ValueError, match="gap"):
        stats.items_to_separate_means(0)


# -- the proportions and answer-spread statistics the claims decide on --------------------------------------------
def test_wilson_and_binomial_match_statsmodels_and_scipy():
    assert wilson_interval(6, 8) == pytest.approx(proportion_confint(6, 8, alpha=0.05, method="wilson"))
    assert binomial_p(30, 80, 0.25) == pytest.approx(binomtest(30, 80, 0.25, alternative="greater").pvalue)


def test_effective_labels_counts_the_labels_answers_really_use():
    assert effective_labels(["a"] * 10) == pytest.approx(1.0)
    assert effective_labels(["a", "b", "c", "d"] * 5) == pytest.approx(4.0)
    assert 1.0 < effective_labels(["a"] * 9 + ["b"]) < 2.0


def test_label_homogeneity_is_chi_square_and_one_for_a_single_label():
    from scipy.stats import chi2_contingency

    a, b = ["x"] * 30 + ["y"] * 10, ["x"] * 20 + ["y"] * 20
    assert label_homogeneity_p(a, b) == pytest.approx(chi2_contingency([[30, 10], [20, 20]]).pvalue)
    assert label_homogeneity_p(["x"] * 5, ["x"] * 7) == 1.0


def test_advantage_change_is_seeded_and_reads_a_lost_advantage():
    rng = np.random.default_rng(3)
    a = {"clean": rng.random(60) < 0.9, "0 dB": rng.random(60) < 0.4}
    b = {"clean": rng.random(60) < 0.6, "0 dB": rng.random(60) < 0.6}
    res = advantage_change(a, b, low="0 dB", seed=1)
    assert res.change == pytest.approx(res.advantage["0 dB"] - res.advantage["clean"])
    assert res.change_ci[0] <= res.change <= res.change_ci[1] < 0 and res.low_advantage_ci[1] <= 0.1
    assert res.accuracy_a["clean"] == pytest.approx(np.mean(a["clean"])) and res.n == 60
    assert advantage_change(a, b, low="0 dB", seed=1) == res


def test_advantage_change_without_any_change_falls_back_to_the_point_estimate():
    same = {"clean": [True, False] * 10, "0 dB": [True, False] * 10}
    res = advantage_change(same, same, low="0 dB")
    assert res.change == 0 and res.change_ci[1] == 0


def test_an_advantage_change_bound_that_is_zero_is_zero_not_float_noise():
    """0/1 accuracies over 40 items: this change's bootstrap upper bound is exactly 0 (the unrounded percentile gave
    2.8e-18, and −1.1e-16 on a measured control), so a strict "CI < 0" must not call it a shrink."""
    rows = ["1" * 40, "1011111011110111011111111111111111101100",
            "0001001001111110100000100000011101010110", "0101011011010110001010000110100100110011"]
    xc, xl, yc, yl = (np.array([c == "1" for c in r]) for r in rows)
    res = advantage_change({"clean": xc, "0 dB": xl}, {"clean": yc, "0 dB": yl}, low="0 dB", seed=0, n_resamples=999)
    assert res.change_ci[1] == 0.0 and res.change_ci[0] < 0
    assert res.change == pytest.approx((xl.mean() - yl.mean()) - (xc.mean() - yc.mean()))
