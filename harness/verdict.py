"""Verdict: the outcome of one claim for one model × task, carrying its evidence.

The assertion message, the RunRecord and the reports all render the same object, so a number a user
reads in a failing test is the number in the report. ``line()`` is the one-line rendering, e.g.
``ultravox-v0_6-8b/sentiment: NOT equivalent — κ=0.62 [0.55, 0.69] < κ_min 0.70 (paper 0.75, notes),
McNemar p=0.003 (BH), n=400``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from harness.claims.registry import NAMES as CLAIMS     # the registry of claims: one module each


@dataclass(frozen=True)
class Verdict:
    """One claim's outcome. ``expected``/``observed`` are outcome words (e.g. "equivalent", "divergent",
    "emergent", "not emergent", "collapses", "reverses"); ``passed`` is whether observed meets expected."""

    model: str
    task: str
    claim: str                          # one of CLAIMS
    expected: str
    observed: str
    passed: bool
    statistic: str                      # e.g. "kappa", "lens_precision", "accuracy_erased", "advantage_0db"
    value: float
    ci: tuple[float, float] | None = None
    n: int = 0
    p: float | None = None
    p_method: str | None = None         # e.g. "McNemar exact, BH across the model's tasks"
    thresholds: dict = field(default_factory=dict)
    paper: dict = field(default_factory=dict)      # {"value": 0.75, "tier": "notes", "seed": ..., ...}
    evidence: dict = field(default_factory=dict)   # every other number the decision used
    condition: str = "clean"
    reason: str = ""                    # the decisive comparison, in words and numbers

    def __post_init__(self):
        if self.claim not in CLAIMS:
            raise ValueError(f"unknown claim {self.claim!r}; expected one of {CLAIMS}")

    @property
    def key(self) -> str:
        """Stable identity across runs: model/task/claim[/condition]."""
        base = f"{self.model}/{self.task}/{self.claim}"
        return base if self.condition == "clean" else f"{base}/{self.condition}"

    def line(self) -> str:
        """One readable line: who, outcome, the statistic with its CI, the decisive comparison, n."""
        where = f"{self.model}/{self.task}" + ("" if self.condition == "clean" else f"/{self.condition}")
        outcome = self.observed if self.passed else f"NOT {self.expected} (observed: {self.observed})"
        constant = self.evidence.get("constant_rater")
        if constant:        # κ is 0 by construction: an interval would look precise and say nothing
            parts = [f"{self.statistic}={_fmt(self.value)} (by construction: the {constant} gave one answer to "
                     "every item, so no interval; see raw agreement and AC1)"]
        else:
            parts = [f"{self.statistic}={_fmt(self.value)}" + (f" [{_fmt(self.ci[0])}, {_fmt(self.ci[1])}]"
                                                               if self.ci else "")]
        if self.reason:
            parts.append(self.reason)
        if self.paper.get("value") is not None:
            parts.append(f"paper {_fmt(self.paper['value'])} ({self.paper.get('tier', '?')})")
        if self.p is not None:
            parts.append(f"p={_fmt_p(self.p)}" + (f" ({self.p_method})" if self.p_method else ""))
        parts.append(f"n={self.n}")
        return f"{where}: {outcome} — " + ", ".join(parts)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ci"] = list(self.ci) if self.ci else None
        d["key"] = self.key
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Verdict":
        d = {k: v for k, v in d.items() if k != "key"}
        if d.get("ci") is not None:
            d["ci"] = tuple(d["ci"])
        return cls(**d)


def _fmt(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan"
    return f"{x:.2f}" if abs(x) >= 0.01 or x == 0 else f"{x:.3g}"


def _fmt_p(p: float) -> str:
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"
