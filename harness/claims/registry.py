"""The registry of claims: which exist, in report order. Adding a claim is one module and one entry here."""
from __future__ import annotations

from harness.claims import agreement, collapse, emergence, noise

MODULES = {"agreement": agreement, "emergence": emergence, "collapse": collapse, "noise": noise}
NAMES = tuple(MODULES)


def claim(name: str):
    """The module of claim ``name``."""
    if name not in MODULES:
        raise ValueError(f"unknown claim {name!r}; expected one of {NAMES}")
    return MODULES[name]


def expand(exp) -> list:
    """The expectation as the tests run it: one per variant for claims that have variants (noise kinds)."""
    return list(getattr(claim(exp.claim), "expand", lambda e: [e])(exp))


def variant(exp) -> str | None:
    """The variant an expanded expectation stands for (e.g. "white"), or None."""
    return getattr(claim(exp.claim), "variant", lambda e: None)(exp)
