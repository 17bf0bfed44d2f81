"""Evidence reuse: each (system, item, condition) is inferred once per run, however many claims use it."""
from __future__ import annotations

import dataclasses

import pytest

from harness.claims.expectations import Expectation, expectations
from harness.evidence import REFERENCE_ITEMS, Evidence, split_mutant
from harness.runner import Runner

ITEMS = 4


def _exp(claim, task, expected, model="ref-cascade"):
    e = next(x for x in expectations("some-new-model", text_sufficient=[task], text_insufficient=[])
             if x.claim == claim)
    return Expectation(model, task, claim, expected, e.thresholds, {}, "test")


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory):
    """conftest's ``tmp_cache`` (an empty cache, the converted backbones linked), once for this module: what one
    test synthesised, transcribed and inferred the next reads from disk instead of computing it again."""
    from harness.cache import CACHE_ENV, cache_root

    backbones = cache_root() / "backbones"
    backbones.mkdir(parents=True, exist_ok=True)
    root = tmp_path_factory.mktemp("evidence") / "cache"
    root.mkdir()
    (root / "backbones").symlink_to(backbones)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV, str(root))
        yield root


@pytest.fixture(scope="module")
def cold_run(module_cache):
    """(evidence, verdict, inferences) of the sentiment agreement verdict on the still empty module cache. Every
    test that touches the cache asks for it first, so these counts are always a cold run's."""
    ev = Evidence(items=ITEMS, runner=Runner(progress=False))
    v1 = ev.verdict(_exp("agreement", "sentiment", "equivalent"), peers=["sentiment"])
    return ev, v1, dict(ev.runner.inferences)


@pytest.fixture
def evidence(cold_run):
    return Evidence(items=ITEMS, runner=Runner(progress=False))


def test_split_mutant():
    assert split_mutant("ref-cascade~flip0.3") == ("ref-cascade", "flip0.3")
    assert split_mutant("ref-cascade") == ("ref-cascade", None)
    assert split_mutant("ref-cascade~flip2") == ("ref-cascade~flip2", None)
    assert split_mutant("ref-transcriber~permuted") == ("ref-transcriber", "permuted")
    assert split_mutant("ref-transcriber~noerase") == ("ref-transcriber", "noerase")
    assert split_mutant("ref-transcriber~fragile") == ("ref-transcriber", "fragile")
    assert split_mutant("ref-transcriber~shuffled") == ("ref-transcriber~shuffled", None)


def test_answers_are_inferred_once_per_run_and_then_come_from_disk(cold_run):
    evidence, v1, counts = cold_run
    llm, casc = evidence.speech_llm("ref-cascade"), evidence.cascade("ref-cascade")
    assert counts[llm.name] == ITEMS and counts[casc.name] == ITEMS       # + the oracle ceiling's backbone pass
    v2 = evidence.verdict(_exp("agreement", "sentiment", "divergent"), peers=["sentiment"])
    evidence.answers("ref-cascade", "sentiment")
    assert dict(evidence.runner.inferences) == counts                   # nothing inferred twice
    assert (v1.value, v1.ci, v1.p) == (v2.value, v2.ci, v2.p)
    fresh = Evidence(items=ITEMS, runner=Runner(progress=False))        # a rerun: disk cache, identical verdict
    v3 = fresh.verdict(_exp("agreement", "sentiment", "equivalent"), peers=["sentiment"])
    assert sum(fresh.runner.inferences.values()) == 0 and v3 == v1


def test_the_flip_mutant_reuses_the_wrapped_models_answers(evidence):
    plain_llm, _ = evidence.answers("ref-cascade", "topic")
    before = dict(evidence.runner.inferences)
    mutant = Evidence(items=ITEMS, runner=evidence.runner, mutations={"ref-cascade": "flip1.0"})
    flipped, _ = mutant.answers("ref-cascade", "topic")
    assert dict(mutant.runner.inferences) == before
    assert all(a.choice != b.choice for a, b in zip(plain_llm, flipped))   # share 1.0 flips every answer
    again, _ = Evidence(items=ITEMS, runner=evidence.runner, mutations={"ref-cascade": "flip1.0"}).answers("ref-cascade", "topic")
    assert [a.choice for a in again] == [a.choice for a in flipped]        # seeded: the same flips


def test_noise_claim_runs_on_a_real_model_and_records_its_curve(cold_run):
    # the clean answers are cold_run's (on disk); the 0 dB ones are inferred here
    ev = Evidence(items=ITEMS, runner=Runner(progress=False), noise_grid=(0,))
    v = ev.verdict(_exp("noise", "sentiment", "shrinks"))
    assert v.claim == "noise" and v.condition == "white" and v.n == ITEMS
    assert set(v.evidence["accuracy_llm"]) == {"clean", "0 dB"}
    curve = ev.curves["ref-cascade"]["noise"]["sentiment"]["white"]
    assert curve["snr"] == ["clean", 0] and len(curve["speech_llm"]) == len(curve["cascade"]) == 2


def test_every_claim_sizes_its_items_from_its_expectation_capped_by_the_run():
    """``items`` on any claim's entry (0: the model's default), capped by ``--items``: one rule, Evidence.claim_items."""
    plain = _exp("collapse", "topic", "collapses")                     # ref-cascade: a reference model
    sized = dataclasses.replace(plain, thresholds={**plain.thresholds, "items": 40})
    zero = dataclasses.replace(plain, thresholds={**plain.thresholds, "items": 0})
    run = Evidence(runner=Runner(progress=False))
    assert run.claim_items(plain) == run.claim_items(zero) == REFERENCE_ITEMS and run.claim_items(sized) == 40
    capped = Evidence(items=8, runner=Runner(progress=False))
    assert capped.claim_items(sized) == capped.claim_items(plain) == 8
    assert Evidence(items=100, runner=Runner(progress=False)).claim_items(sized) == 40


def test_an_agreement_expectation_sized_below_the_run_is_judged_on_its_own_items(evidence):
    exp = _exp("agreement", "sentiment", "equivalent")
    small = dataclasses.replace(exp, thresholds={**exp.thresholds, "items": 2})
    v = evidence.verdict(small, peers=[small])
    assert v.n == 2 and len(evidence.answers("ref-cascade", "sentiment", items=2)[0]) == 2
