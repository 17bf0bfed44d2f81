"""`--strict` (nightly) turns skips into failures that keep their reason; without it they stay skips."""
from pathlib import Path

pytest_plugins = ["pytester"]

ROOT_CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"


def _suite(pytester):
    pytester.makeconftest(ROOT_CONFTEST.read_text())
    pytester.makepyfile(test_gpu="""
        import pytest

        def test_needs_gpu():
            pytest.skip("no CUDA GPU (ultravox-v0_6-8b needs ~20 GiB)")

        def test_runs():
            assert True
    """)


def test_skip_is_a_skip_by_default(pytester):
    _suite(pytester)
    pytester.runpytest().assert_outcomes(passed=1, skipped=1)


def test_strict_turns_the_skip_into_a_failure_with_its_reason(pytester):
    _suite(pytester)
    result = pytester.runpytest("--strict")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*--strict: this test was skipped*no CUDA GPU*"])
