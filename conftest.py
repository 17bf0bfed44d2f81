"""pytest layer: command-line options and session fixtures. No statistics or model code lives here."""
from __future__ import annotations

import os

import pytest

# Tests and CI never fetch from a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cascade-equivalence")
    # `--strict` itself is pytest's own flag (pytest 9: all strictness checks); we read it and also turn
    # skips into failures, so `pytest --strict` (nightly) never passes by skipping.
    group.addoption("--items", type=int, default=None, help="items per task (label-balanced subset)")
    group.addoption("--trust-remote-code", action="store_true", default=False,
                    help="allow models whose code comes from the hub (Ultravox); off unless asked for")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under --strict a skip is a failure that keeps its reason."""
    outcome = yield
    report = outcome.get_result()
    if item.config.getoption("strict", False) and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"--strict: this test was skipped ({reason}); nightly runs must not skip"
