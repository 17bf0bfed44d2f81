"""The suite demonstrably fails when a model breaks equivalence: the flip mutant of ref-disguised-cascade (an
ASR→LLM cascade in disguise, judged equivalent), run through
pytest itself (pytester), fails its agreement test with a readable verdict; the report diff flags the break."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cache import cache_root

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
# Read before pytester moves HOME to a temp folder: without it, the subprocess runs would use an empty answer
# cache under that HOME (when CASCADE_EQ_CACHE is unset, as in CI) and the session would infer it all twice.
SESSION_CACHE = cache_root()
TEST = str(ROOT / "equivalence_tests" / "test_agreement.py")
SELECT = ["-k", "ref-disguised-cascade and sentiment", "-p", "no:cacheprovider", "--rootdir", str(ROOT)]


@pytest.mark.slow
def test_flip_mutant_fails_its_agreement_test_and_the_diff_reports_the_break(pytester, tmp_path, monkeypatch):
    monkeypatch.setenv("CASCADE_EQ_CACHE", str(SESSION_CACHE))      # the subprocesses share this session's cache
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
