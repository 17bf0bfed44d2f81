"""`pytest -n 2 --dist loadgroup` (one model per GPU): the report holds every worker's verdicts, written once by
the controller, each model's tests run on one worker, and the verdicts equal a serial run's."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
TEST = str(ROOT / "equivalence_tests" / "test_agreement.py")
SELECT = ["-k", "ref-disguised-cascade or ref-acoustic", "--items", "8", "-p", "no:cacheprovider", "--rootdir",
          str(ROOT), "-v"]


def _verdicts(folder: Path) -> dict:
    return {v["key"]: v for v in json.loads((folder / "record.json").read_text())["verdicts"]}


@pytest.mark.slow
def test_parallel_run_reports_every_verdict_once_and_keeps_each_model_on_one_worker(pytester, tmp_path, session_cache):
    pytest.importorskip("xdist")
    serial = pytester.runpytest_subprocess(TEST, *SELECT, "--report-dir", str(tmp_path / "serial"))
    serial.assert_outcomes(passed=3)
    parallel = pytester.runpytest_subprocess(TEST, *SELECT, "-n", "2", "--dist", "loadgroup",
                                             "--report-dir", str(tmp_path / "parallel"))
    parallel.assert_outcomes(passed=3)
    got, want = _verdicts(tmp_path / "parallel"), _verdicts(tmp_path / "serial")
    assert sorted(got) == sorted(want) and len(got) == 3
    assert got == want                                  # the same evidence gives the same verdicts
    workers: dict[str, set[str]] = {}
    for line in parallel.outlines:
        m = re.search(r"\[(gw\d+)\].*test_agreement\[([^/\]]+)/", line)
        if m:
            workers.setdefault(m[2], set()).add(m[1])
    assert set(workers) == {"ref-disguised-cascade", "ref-acoustic"}
    assert all(len(w) == 1 for w in workers.values()), workers
    assert "did not keep the model on one worker" not in parallel.stdout.str()
