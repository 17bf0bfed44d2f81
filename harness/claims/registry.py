"""The registry of claims: which exist, in report order. Adding a claim is one module and one entry here."""
from __future__ import annotations

import importlib

# Each name is the module ``harness.claims.<name>``, imported when first asked for, so the names can be read (e.g. by
# ``harness.verdict``) without importing the claims, which themselves build Verdicts.
NAMES = ("agreement", "emergence", "collapse", "noise")


def claim(name: str):
    """The module of claim ``name``."""
    if name not in NAMES:
        raise ValueError(f"unknown claim {name!r}; expected one of {NAMES}")
    return importlib.import_module(f"harness.claims.{name}")


def expand(exp) -> list:
    """The expectation as the tests run it: one per variant for claims that have variants (noise kinds)."""
    return list(getattr(claim(exp.claim), "expand", lambda e: [e])(exp))


def variant(exp) -> str | None:
    """The variant an expanded expectation stands for (e.g. "white"), or None."""
    return getattr(claim(exp.claim), "variant", lambda e: None)(exp)
