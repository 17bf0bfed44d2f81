"""The claims, one module each; ``NAMES`` is the only list of them (tests, report, schema and plots read it).

A claim module owns everything about its claim, so a new claim is one new module plus its name here:
- ``OUTCOMES``: the outcome words a claims file may expect (the first is the hypothesis' side);
- ``THRESHOLDS``: its ``[thresholds.<claim>]`` keys with their checks (``expectations.number`` …);
- ``verdict(evidence, exp, peers)``: gather what it needs from the session's shared
  :class:`~harness.evidence.Evidence`, record its report curve, and decide (``decide``) → Verdict;
- ``CURVE_SCHEMA`` (optional): the JSON schema of one task's report curve under ``curves[model][<claim>]``;
- ``FIGURE_TITLE`` and ``figure(verdicts, curves)``: its plot in the HTML report (None: nothing to draw);
- ``expand(exp)`` / ``variant(exp)`` (optional): one expectation per variant (noise: per kind) and its name,
  which ends the test id (``test_noise[model/task/white]``) and the verdict's condition.

Modules are imported when first asked for, so :mod:`harness.verdict` can read ``NAMES`` without importing the
claims (which import it).
"""
from __future__ import annotations

import importlib

NAMES = ("agreement", "emergence", "collapse", "noise")


def claim(name: str):
    """The module of claim ``name``."""
    if name not in NAMES:
        raise ValueError(f"unknown claim {name!r}; expected one of {NAMES}")
    return importlib.import_module(f"{__name__}.{name}")


def modules() -> list:
    return [claim(name) for name in NAMES]


def expand(exp) -> list:
    """The expectation as the tests run it: one per variant for claims that have variants (noise kinds)."""
    return list(getattr(claim(exp.claim), "expand", lambda e: [e])(exp))


def variant(exp) -> str | None:
    """The variant an expanded expectation stands for (e.g. "white"), or None."""
    return getattr(claim(exp.claim), "variant", lambda e: None)(exp)
