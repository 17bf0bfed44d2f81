"""Checks of what a claims-file value may hold: each returns None or what is wrong (the loader names file and field)."""
from __future__ import annotations

import math


def number(lo: float, hi: float, *, open_lo: bool = False, open_hi: bool = False):
    """A check that the value is a finite number in [lo, hi] (or an open side)."""
    def check(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return f"must be a number, got {v!r}"
        if v < lo or v > hi or (open_lo and v == lo) or (open_hi and v == hi):
            return f"must be in {'(' if open_lo else '['}{lo:g}, {hi:g}{')' if open_hi else ']'}, got {v!r}"
        return None
    return check


def count(v):
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        return f"must be a whole number ≥ 0, got {v!r}"
    return None


def text(v):
    return None if isinstance(v, str) and v.strip() else f"must be a non-empty string, got {v!r}"
