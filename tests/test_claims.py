"""harness.claims: expectations from the TOML files, and each claim module's decision rule on real statistics."""
from __future__ import annotations

import random
import re

import pytest

from harness import stats
from harness.claims import agreement, collapse, emergence, noise
from harness.claims.expectations import (
    CLAIMS_DIR, ClaimsFileError, Expectation, expectations, load_defaults, user_task_expectations,
)
from harness.verdict import Verdict

TS, TI = ["topic", "sentiment", "commonsense"], ["speaking_rate"]


def _exp(claim, expected, **thresholds):
    defaults = load_defaults()["thresholds"][claim]
    return Expectation("m", "sentiment", claim, expected, {**defaults, **thresholds}, {"value": 0.75, "tier": "N"})


# -- expectations ---------------------------------------------------------------------------------------
def test_a_new_model_gets_the_defaults_per_task_kind():
    exps = expectations("some-new-model", text_sufficient=TS, text_insufficient=TI)
    by = {(e.task, e.claim, e.thresholds.get("kind")): e.expected for e in exps}
    assert by[("topic", "agreement", None)] == "equivalent"
    assert by[("speaking_rate", "agreement", None)] == "divergent"
    assert by[("sentiment", "noise", "white")] == by[("sentiment", "noise", "babble")] == "shrinks"
    assert all(e.source.startswith("defaults.toml") for e in exps)


def test_a_paper_model_keeps_paper_value_tier_and_seed_visible():
    exps = expectations("qwen2-audio-7b-instruct", text_sufficient=TS, text_insufficient=TI)
    e = next(x for x in exps if x.task == "sentiment" and x.claim == "agreement")
    assert e.expected == "divergent" and e.paper["value"] == 0.54 and e.paper["tier"] == "N"
    assert "0.45" in e.paper["seed"]            # the press summary's disagreeing number stays visible
    assert e.thresholds["kappa_min"] == 0.70


@pytest.mark.parametrize("body, message", [
    ('model = "x"\n[tasks.topic]\nagreement = "maybe"\n', "'maybe' is not one of"),
    ('model = "x"\n[tasks.topic]\nvibes = "equivalent"\n', "unknown claim 'vibes'"),
    ('model = "x"\n[tasks.topic]\nagreement = { paper = 0.9 }\n', "needs an 'expected' outcome"),
    ('model = "x"\n[tasks.topic]\nagreement = { expected = "equivalent", kapa_min = 0.8 }\n', "unknown keys ['kapa_min']"),
    ('model = "y"\n', "model = 'y', expected 'x'"),
    ('model = "x"\n[tasks.topic\n', "x.toml"),
    ('model = "x"\n[tasks.topic]\nagreement = { expected = "equivalent", kappa_min = "high" }\n',
     "x.toml [tasks.topic]: agreement: kappa_min must be a number, got 'high'"),
    ('model = "x"\n[tasks.topic]\nagreement = { expected = "equivalent", kappa_min = 7.0 }\n',
     "x.toml [tasks.topic]: agreement: kappa_min must be in [-1, 1], got 7.0"),
    ('model = "x"\n[tasks.topic]\nagreement = { expected = "equivalent", alpha = 0 }\n', "alpha must be in (0, 1)"),
    ('model = "x"\n[tasks.topic]\nnoise = { expected = "shrinks", kinds = ["file"] }\n', "kinds must be a non-empty list"),
    ('model = "x"\n[tasks.topic]\nagreement = { expected = "equivalent", known_issue = 5 }\n',
     "known_issue must be a non-empty string"),
    ('model = "x"\n[tasks.topik]\nagreement = "equivalent"\n', "x.toml [tasks.topik]: unknown task 'topik'; known: "),
    ('model = "x"\n[tasks.topic]\ncollapse = { expected = "collapses", items = -4 }\n',
     "x.toml [tasks.topic]: collapse: items must be a whole number ≥ 0, got -4"),
])
def test_bad_claims_files_name_the_file_and_the_problem(tmp_path, body, message):
    (tmp_path / "defaults.toml").write_text((CLAIMS_DIR / "defaults.toml").read_text())
    (tmp_path / "x.toml").write_text(body)
    with pytest.raises(ClaimsFileError) as err:
        expectations("x", text_sufficient=TS, text_insufficient=TI, directory=tmp_path)
    assert message in str(err.value)


@pytest.mark.parametrize("line, message", [
    ("kappa_min = 0.70", "kappa_min must be a number, got 'high'"),
    ("alpha = 0.05", "alpha must be in (0, 1), got 1.5"),
])
def test_bad_default_thresholds_name_the_table_and_field(tmp_path, line, message):
    defaults = (CLAIMS_DIR / "defaults.toml").read_text()
    bad = {"kappa_min = 0.70": 'kappa_min = "high"', "alpha = 0.05": "alpha = 1.5"}[line]
    (tmp_path / "defaults.toml").write_text(defaults.replace(line, bad, 1))
    with pytest.raises(ClaimsFileError, match=r"defaults.toml \[thresholds.agreement\]: " + re.escape(message)):
        load_defaults(tmp_path)


def test_any_claim_may_size_its_items_and_only_an_entry_that_does_carries_them(tmp_path):
    (tmp_path / "defaults.toml").write_text((CLAIMS_DIR / "defaults.toml").read_text())
    (tmp_path / "x.toml").write_text('model = "x"\n[tasks.topic]\nagreement = { expected = "equivalent", items = 40 }\n'
                                     'emergence = "emergent"\n')
    by = {e.claim: e for e in expectations("x", text_sufficient=TS, text_insufficient=TI, directory=tmp_path)}
    assert by["agreement"].thresholds["items"] == 40 and "items" not in by["emergence"].thresholds


def test_per_entry_threshold_override(tmp_path):
    (tmp_path / "defaults.toml").write_text((CLAIMS_DIR / "defaults.toml").read_text())
    (tmp_path / "x.toml").write_text('model = "x"\n[tasks.topic]\nagreement = { expected = "equivalent", kappa_min = 0.8 }\n')
    [e] = expectations("x", text_sufficient=TS, text_insufficient=TI, directory=tmp_path)
    assert e.thresholds["kappa_min"] == 0.8 and e.thresholds["kappa_max"] == 0.70


# -- agreement --------------------------------------------------------------------------------------------
def _answers(n, flip, seed=0, labels=("negative", "positive")):
    rng = random.Random(seed)
    gold = [labels[i % 2] for i in range(n)]
    casc = [g if rng.random() < 0.9 else labels[1 - labels.index(g)] for g in gold]
    llm = [c if rng.random() >= flip else labels[1 - labels.index(c)] for c in casc]
    return gold, llm, casc


def _agreement(flip, expected="equivalent", n=200):
    gold, llm, casc = _answers(n, flip)
    kappa = stats.agreement(llm, casc, n_categories=2)
    test = stats.mcnemar([a == g for a, g in zip(llm, gold)], [c == g for c, g in zip(casc, gold)])
    return agreement.decide(_exp("agreement", expected), kappa, test.p_value, test)


def test_identical_answers_are_equivalent():
    v = _agreement(0.0)
    assert v.passed and v.observed == "equivalent" and v.value == pytest.approx(1.0) and v.n == 200


def test_a_third_flipped_is_divergent_and_the_line_says_why():
    v = _agreement(0.33)
    assert not v.passed and v.observed == "divergent"
    line = v.line()
    assert line.startswith("m/sentiment: NOT equivalent (observed: divergent) — κ=")
    assert "κ_max 0.70" in line and "paper 0.75 (N)" in line and "n=200" in line
    assert v.ci[1] < 0.70


def test_divergent_expectation_passes_on_divergence():
    assert _agreement(0.33, expected="divergent").passed


def test_significant_mcnemar_alone_makes_divergent():
    gold = ["positive"] * 100 + ["negative"] * 100
    casc = list(gold)
    llm = ["negative"] * 200            # directional: the speech-LLM loses every positive item
    kappa = stats.agreement(llm, casc, n_categories=2)
    test = stats.mcnemar([a == g for a, g in zip(llm, gold)], [c == g for c, g in zip(casc, gold)])
    v = agreement.decide(_exp("agreement", "equivalent"), kappa, test.p_value, test)
    assert v.observed == "divergent" and "McNemar significant" in v.reason


# -- emergence ----------------------------------------------------------------------------------------------
def _lens(prec, ctrl, half=0.02):
    def curve(vals, h):
        return {"mean": vals, "ci_low": [v - h for v in vals], "ci_high": [v + h for v in vals]}
    return {"layers": [0, 1, 2], "best_layer": 2, "n_items": 50, "precision": curve([0.01, 0.05, prec], half),
            "control": curve([0.01, 0.02, ctrl], half),
            "difference": curve([0.0, 0.03, prec - ctrl], 0.015)}


def test_emergence_needs_separation_and_the_threshold():
    assert emergence.decide(_exp("emergence", "emergent"), _lens(0.34, 0.05)).observed == "emergent"
    low = emergence.decide(_exp("emergence", "emergent"), _lens(0.12, 0.05))
    assert low.observed == "not emergent" and "< precision_min 0.20" in low.reason
    overlap = emergence.decide(_exp("emergence", "emergent"), _lens(0.25, 0.24))
    assert overlap.observed == "not emergent" and "not above mismatched control" in overlap.reason


# -- collapse -------------------------------------------------------------------------------------------------
def _bools(n, share, seed):
    rng = random.Random(seed)
    k = round(n * share)
    out = [True] * k + [False] * (n - k)
    rng.shuffle(out)
    return out


def test_collapse_at_chance_with_a_holding_random_control():
    n = 120
    v = collapse.decide(_exp("collapse", "collapses"), baseline=_bools(n, 0.85, 1), text_erased=_bools(n, 0.5, 2),
                        random_erased=_bools(n, 0.82, 3), chance=0.5)
    assert v.passed and v.observed == "collapses" and v.ci[0] <= 0.5 and v.p > 0.05


def test_no_collapse_when_text_erasure_leaves_accuracy_or_the_control_drops_too():
    n = 120
    high = collapse.decide(_exp("collapse", "collapses"), baseline=_bools(n, 0.85, 1),
                           text_erased=_bools(n, 0.8, 2), random_erased=_bools(n, 0.82, 3), chance=0.5)
    assert high.observed == "does not collapse" and "above chance" in high.reason
    both = collapse.decide(_exp("collapse", "collapses"), baseline=_bools(n, 0.85, 1),
                           text_erased=_bools(n, 0.5, 2), random_erased=_bools(n, 0.5, 3), chance=0.5)
    assert both.observed == "does not collapse" and "random control also drops" in both.reason


def test_collapse_rejects_mismatched_item_lists():
    with pytest.raises(ValueError, match="same non-empty items"):
        collapse.decide(_exp("collapse", "collapses"), baseline=[True] * 5, text_erased=[True] * 4,
                        random_erased=[True] * 5, chance=0.5)


# -- noise ------------------------------------------------------------------------------------------------------
def test_noise_reversal_and_shrink_and_no_change():
    n = 200
    exp = dict(_exp("noise", "reverses").thresholds, kind="white")
    e = Expectation("m", "sentiment", "noise", "reverses", exp)
    llm = {"clean": _bools(n, 0.90, 1), "0 dB": _bools(n, 0.55, 2)}
    casc = {"clean": _bools(n, 0.85, 3), "0 dB": _bools(n, 0.75, 4)}
    v = noise.decide(e, llm=llm, cascade=casc, low="0 dB")
    assert v.passed and v.observed == "reverses" and v.condition == "white"
    assert v.evidence["advantage"]["clean"] == pytest.approx(0.05) and v.evidence["advantage"]["0 dB"] == pytest.approx(-0.2)
    same = noise.decide(e, llm={"clean": llm["clean"], "0 dB": llm["clean"]},
                        cascade={"clean": casc["clean"], "0 dB": casc["clean"]}, low="0 dB")
    assert same.observed == "does not shrink" and not same.passed
    assert noise.decide(e, llm=llm, cascade=casc, low="0 dB").to_dict() == v.to_dict()   # deterministic


def test_verdict_round_trips_and_rejects_unknown_claims():
    v = _agreement(0.33)
    assert Verdict.from_dict(v.to_dict()) == v
    with pytest.raises(ValueError, match="unknown claim"):
        Verdict("m", "t", "vibes", "x", "y", False, "s", 0.0)


def test_known_issue_is_carried(tmp_path):
    (tmp_path / "defaults.toml").write_text((CLAIMS_DIR / "defaults.toml").read_text())
    (tmp_path / "x.toml").write_text('model = "x"\n[tasks.topic]\nnoise = { expected = "shrinks", known_issue = "under-trained" }\n')
    exps = expectations("x", text_sufficient=TS, text_insufficient=TI, directory=tmp_path)
    assert [e.thresholds["kind"] for e in exps] == ["white", "babble"]
    assert all(e.known_issue == "under-trained" for e in exps)


# -- collapse guards and the emergence band --------------------------------------------------------------------
def _guarded(expected="collapses"):
    return Expectation("m", "keyword_topic", "collapse", expected,
                              {"delta": 0.10, "guarded": True, "alpha": 0.05})


def test_a_degenerate_erasure_is_judged_not_to_collapse_and_says_why():
    """The trap: erasure makes the model answer one label for 38 of 40 items (accuracy ≈ chance, random control
    holds), while the cascade reading its transcript without the concept's words still answers right and spread."""
    labels = ["world", "sports", "business", "sci-tech"]
    gold = [labels[i % 4] for i in range(40)]
    erased = ["world"] * 38 + ["sports", "business"]
    v = collapse.decide(_guarded(), baseline=[True] * 38 + [False] * 2,
                        text_erased=[e == g for e, g in zip(erased, gold)], random_erased=[True] * 37 + [False] * 3,
                        damage_erased=[True] * 36 + [False] * 4, chance=0.25,
                        text_deleted=[True] * 39 + [False], erased_choices=erased, reference_choices=gold)
    assert v.observed == "does not collapse" and not v.passed
    line = v.line()
    assert "degenerate erased answers" in line and "deleting the concept's words does not cost" in line
    assert "✓ at chance" in line and "✓ random control holds" in line     # every guard is shown, passed or not
    assert v.evidence["checks"] == {"at chance": True, "not below chance": True, "random control holds": True,
                                    "answers spread": False, "damage control holds": True, "text level": False}


def test_a_guarded_collapse_needs_every_check():
    labels = ["world", "sports", "business", "sci-tech"]
    gold = [labels[i % 4] for i in range(80)]
    erased = [labels[(i * 7 + i // 4) % 4] for i in range(80)]             # spread, unrelated to gold
    deleted = [labels[(i * 3 + i // 5) % 4] for i in range(80)]
    kw = dict(baseline=[True] * 76 + [False] * 4, text_erased=[e == g for e, g in zip(erased, gold)],
              random_erased=[True] * 75 + [False] * 5, damage_erased=[True] * 74 + [False] * 6, chance=0.25,
              text_deleted=[d == g for d, g in zip(deleted, gold)], erased_choices=erased, reference_choices=deleted)
    v = collapse.decide(_guarded(), **kw)
    assert v.passed and v.observed == "collapses", v.line()
    assert all(v.evidence["checks"].values())
    damaged = collapse.decide(_guarded(), **{**kw, "damage_erased": [True] * 40 + [False] * 40})
    assert damaged.observed == "does not collapse" and "damage-matched random control also drops" in damaged.reason
    below = collapse.decide(_guarded(), **{**kw, "text_erased": [False] * 80})       # the paper's 0.0%
    assert below.observed == "does not collapse" and "below chance" in below.reason


def test_a_constant_answer_is_not_degenerate_when_a_text_free_reader_is_constant_too():
    """A backbone with a strong prior answers its prior label once the words are gone; the erased model doing the
    same is what text removal looks like, not damage."""
    labels = ["world", "sports", "business", "sci-tech"]
    gold = [labels[i % 4] for i in range(40)]
    spread, _ = collapse.answers_spread(["world"] * 40, ["world"] * 39 + ["sports"])
    assert spread
    spread, text = collapse.answers_spread(["world"] * 40, gold)
    assert not spread and "χ² p=" in text


def test_emergence_is_judged_inside_its_band_only():
    lens = {"layers": [0, 1, 2, 3, 4], "n_items": 30, "best_layer": 0,
            "precision": {"mean": [0.6, 0.0, 0.0, 0.05, 0.1], "ci_low": [0.5, 0, 0, 0.0, 0.05],
                          "ci_high": [0.7, 0.01, 0.01, 0.1, 0.15]},
            "control": {"mean": [0.01, 0.0, 0.0, 0.04, 0.02], "ci_low": [0] * 5, "ci_high": [0.02, 0, 0, 0.08, 0.04]},
            "difference": {"mean": [0.59, 0, 0, 0.01, 0.08], "ci_low": [0.49, 0, 0, -0.03, 0.02],
                           "ci_high": [0.69, 0, 0, 0.05, 0.12]}}
    late = Expectation("m", "topic", "emergence", "emergent", {"precision_min": 0.2, "band": [0.5, 1.0]})
    v = emergence.decide(late, lens)
    assert v.observed == "not emergent" and v.evidence["best_layer"] == 4 and v.evidence["peak_layer"] == 0
    assert "overall peak layer 0" in v.reason
    whole = Expectation("m", "topic", "emergence", "emergent", {"precision_min": 0.2, "band": [0.0, 1.0]})
    assert emergence.decide(whole, lens).observed == "emergent"
    with pytest.raises(ValueError, match="band"):
        emergence.decide(Expectation("m", "topic", "emergence", "emergent",
                                            {"precision_min": 0.2, "band": [0.3, 0.4]}), lens)


def test_a_claims_file_gives_only_the_tasks_asked_for_but_checks_every_entry(tmp_path):
    exps = expectations("qwen2-audio-7b-instruct", text_sufficient=["ag_news"], text_insufficient=["meld"])
    by = {(e.task, e.claim): e for e in exps if e.claim == "agreement"}
    assert set(by) == {("ag_news", "agreement"), ("meld", "agreement")}
    assert by[("ag_news", "agreement")].paper["value"] == 0.85 and by[("meld", "agreement")].paper["value"] == 0.30
    (tmp_path / "defaults.toml").write_text((CLAIMS_DIR / "defaults.toml").read_text())
    (tmp_path / "x.toml").write_text('model = "x"\n[tasks.topic]\nagreement = "equivalent"\n'
                                     '[tasks.ag_news]\nagreement = "maybe"\n')
    with pytest.raises(ClaimsFileError, match="'maybe' is not one of"):
        expectations("x", text_sufficient=["topic"], text_insufficient=[], directory=tmp_path)


def test_user_task_outcomes_come_from_the_models_file(tmp_path):
    [e] = user_task_expectations("ref-disguised-cascade", text_sufficient=["my/task"], text_insufficient=[])
    assert (e.task, e.claim, e.expected) == ("my/task", "agreement", "equivalent") and "[user_tasks" in e.source
    assert user_task_expectations("ref-acoustic", text_sufficient=["my/task"], text_insufficient=[]) == []
    assert user_task_expectations("some-new-model", text_sufficient=["my/task"], text_insufficient=[]) == []


def test_the_verdict_line_flags_a_constant_rater_instead_of_an_interval():
    exp = Expectation("m", "sentiment", "agreement", "equivalent", {"kappa_min": 0.7, "kappa_max": 0.7,
                                                                          "alpha": 0.05})
    model, cascade = ["positive"] * 40, ["positive", "negative"] * 20
    kappa = stats.agreement(model, cascade, n_resamples=300)
    test = stats.mcnemar([m == "positive" for m in model], [c == "positive" for c in cascade])
    verdict = agreement.decide(exp, kappa, test.p_value, test)
    flagged = Verdict.from_dict({**verdict.to_dict(), "evidence": {**verdict.evidence, "constant_rater": "speech-LLM"}})
    assert "κ=0.00 [" in verdict.line()
    assert "the speech-LLM gave one answer to every item (κ = 0 by construction" in verdict.reason
    assert "upper bound" not in verdict.reason
    line = flagged.line()
    assert "κ=0.00 (by construction: the speech-LLM gave one answer to every item, so no interval" in line
    assert "[0.00, 0.00]" not in line
