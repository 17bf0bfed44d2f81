"""The suite demonstrably fails when a model breaks equivalence: the flip mutant of ref-disguised-cascade (an
ASR→LLM cascade in disguise, judged equivalent), run through
pytest itself (pytester), fails its agreement test with a readable verdict; the report diff flags the break."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
TEST = str(ROOT / "equivalence_tests" / "test_agreement.py")
SELECT = ["-k", "ref-disguised-cascade and sentiment", "-p", "no:cacheprovider", "--rootdir", str(ROOT)]


@pytest.mark.slow
def test_flip_mutant_fails_its_agreement_test_and_the_diff_reports_the_break(pytester, tmp_path, session_cache):
    good = pytester.runpytest_subprocess(TEST, *SELECT, "--report-dir", str(tmp_path / "good"))
    good.assert_outcomes(passed=1)
    bad = pytester.runpytest_subprocess(TEST, *SELECT, "--mutant", "ref-disguised-cascade~flip0.4",
                                       "--report-dir", str(tmp_path / "bad"))
    bad.assert_outcomes(failed=1)
    bad.stdout.fnmatch_lines(["*ref-disguised-cascade/sentiment: NOT equivalent (observed: divergent) — κ=* n=*"])
    print("\n".join(line for line in bad.outlines if "NOT equivalent" in line))   # what a user sees

    record = json.loads((tmp_path / "bad" / "record.json").read_text())
    [model] = [m for m in record["provenance"]["models"] if m["id"] == "ref-disguised-cascade"]
    assert model["revision"].endswith("~flip0.4")

    from harness.__main__ import main

    status = main(["report", str(tmp_path / "bad" / "record.json"), "--baseline", str(tmp_path / "good" / "record.json"),
                   "--out", str(tmp_path / "diff")])
    assert status != 0
    md = (tmp_path / "diff" / "report.md").read_text()
    assert "BROKE EQUIVALENCE: ref-disguised-cascade sentiment κ" in md


# -- one mutant per claim for claims 2–4: each flips a positive control's verdict, through pytest itself -------------
def _run_mutant(pytester, test_file: str, select: str, mutant: str, *extra: str):
    bad = pytester.runpytest_subprocess(str(ROOT / "equivalence_tests" / test_file), "-k", select, "--items", "40",
                                        "--mutant", mutant, "-p", "no:cacheprovider", "--rootdir", str(ROOT), *extra)
    bad.assert_outcomes(failed=1)
    print("\n".join(line for line in bad.outlines if "NOT " in line))   # what a user sees
    return bad


@pytest.mark.slow
def test_permuted_transcriber_is_not_emergent(pytester, session_cache):
    """Every token written as a fixed other token's embedding: text-shaped input, but not the words said."""
    bad = _run_mutant(pytester, "test_emergence.py", "ref-transcriber and topic",
                      "ref-transcriber~permuted")
    bad.stdout.fnmatch_lines(["*ref-transcriber/topic: NOT emergent (observed: not emergent) — lens precision=*"])


@pytest.mark.slow
def test_a_noop_eraser_does_not_collapse(pytester, session_cache):
    """The fitted text eraser replaced by a no-op: accuracy stays where it was."""
    bad = _run_mutant(pytester, "test_collapse.py", "ref-transcriber and keyword_topic", "ref-transcriber~noerase")
    bad.stdout.fnmatch_lines(["*ref-transcriber/keyword_topic: NOT collapses (observed: does not collapse) — "
                              "*text-erased accuracy above chance*"])


@pytest.mark.slow
def test_a_noise_fragile_transcriber_shrinks(pytester, session_cache):
    """Every answer replaced by another option under noise: the advantage over its cascade now shrinks."""
    bad = _run_mutant(pytester, "test_noise.py", "ref-transcriber and topic and white",
                      "ref-transcriber~fragile")
    bad.stdout.fnmatch_lines(["*ref-transcriber/topic/white: NOT does not shrink (observed: *) — Δadvantage=*"])
