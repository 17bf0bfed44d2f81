"""`pytest -k <family>` selects exactly that family's claim tests, with readable ids; off-GPU they skip with
the reason and `--strict` makes them fail. (Subprocess runs: a second in-process session would re-import
C extensions.)"""
from __future__ import annotations

from pathlib import Path

from harness.claims.expectations import expectations
from harness.specs import load_specs

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
EQ = str(ROOT / "equivalence_tests")
BASE = ["--rootdir", str(ROOT), "-p", "no:cacheprovider"]
SELECT = ["-k", "(qwen2-audio-7b-instruct or ultravox-v0_6-8b) and topic and test_agreement", "-rs"]


def _expected_ids(family: str) -> set[str]:
    out = set()
    for spec in load_specs().values():
        if spec.family != family:
            continue
        for e in expectations(spec.id, text_sufficient=["topic", "sentiment", "commonsense"],
                                     text_insufficient=["speaking_rate"]):
            out.add(f"{spec.id}/{e.task}" + (f"/{e.thresholds['kind']}" if e.claim == "noise" else ""))
    return out


def test_k_ultravox_collects_exactly_the_ultravox_tests(pytester):
    result = pytester.runpytest_subprocess(EQ, *BASE, "--collect-only", "-q", "-k", "ultravox")
    ids = [line for line in result.outlines if "::" in line]
    assert ids and all("[ultravox-" in line for line in ids)
    assert {line.split("[", 1)[1].rstrip("]") for line in ids} == _expected_ids("ultravox")
    assert any(line.endswith("test_agreement[ultravox-v0_6-8b/sentiment]") for line in ids)
    assert any(line.endswith("test_noise[ultravox-v0_6-8b/topic/babble]") for line in ids)


def test_unavailable_models_skip_with_the_reason(pytester):
    result = pytester.runpytest_subprocess(EQ, *BASE, *SELECT)
    result.assert_outcomes(skipped=2)
    need = load_specs()["qwen2-audio-7b-instruct"].gpu_memory_gb
    result.stdout.fnmatch_lines_random([f"*no CUDA GPU (qwen2-audio-7b-instruct needs ~{need:g} GiB)*",
                                        "*no CUDA GPU (ultravox-v0_6-8b needs ~*"])


def test_strict_turns_those_skips_into_failures(pytester):
    result = pytester.runpytest_subprocess(EQ, *BASE, *SELECT, "--strict")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*--strict: this test was skipped*"])
