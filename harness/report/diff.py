"""A run against its baseline: which verdicts changed, which statistics moved beyond their CIs, and whether
anything broke (the exit status CI acts on).

Why headlines: a user skimming a nightly wants one line per event, e.g.
``BROKE EQUIVALENCE: ultravox-v0_7-8b sentiment κ 0.91 → 0.62 (revision 779bcda5ad → 5d1c0f0e7a)``.

Rules, per verdict key (model/task/claim[/condition]) found in both records — at most one headline each:
- agreement whose observed outcome left "equivalent": ``BROKE EQUIVALENCE`` (a break);
  one that became "equivalent": ``REACHED EQUIVALENCE`` (a break only if its verdict now fails);
- otherwise passed → failed: ``NOW FAILING`` (a break); failed → passed: ``NOW PASSING``;
  observed outcome changed with the same pass/fail: ``CHANGED``;
- otherwise the statistic moved beyond the CIs (the two CIs are disjoint; with one CI, the other value lies
  outside it): ``MOVED``.
A key only in the run: ``NEW`` (``NEW FAILING`` — a break — when it fails); only in the baseline: ``GONE``.
A verdict that failed in the baseline and still fails is a known failure, listed but not a new break.
Exit status: 1 when anything broke, else 0.

Baselines live per model and revision: ``fixtures/baselines/<model>/<revision>.json`` (or any directory laid out
the same way), each a RunRecord holding that model's part of a run.
"""
from __future__ import annotations

from harness import paths

import math
from dataclasses import dataclass, field
from pathlib import Path

from harness.report.record import RecordError, RunRecord, merge
from harness.verdict import Verdict

BASELINES = paths.BASELINES
SYMBOLS = {"kappa": "κ"}
ORDER = ("BROKE EQUIVALENCE", "NOW FAILING", "NEW FAILING", "REACHED EQUIVALENCE", "NOW PASSING", "CHANGED",
         "MOVED", "NEW", "GONE")


@dataclass(frozen=True)
class Change:
    kind: str            # one of ORDER
    key: str
    text: str            # the headline, e.g. "BROKE EQUIVALENCE: m sentiment κ 0.91 → 0.62"
    broke: bool = False


@dataclass
class Diff:
    changes: list[Change] = field(default_factory=list)
    still_failing: list[str] = field(default_factory=list)
    compared: int = 0
    baseline_created: str = ""

    @property
    def broke(self) -> list[Change]:
        return [c for c in self.changes if c.broke]

    @property
    def exit_status(self) -> int:
        return 1 if self.broke else 0

    def headlines(self) -> list[str]:
        return [c.text for c in sorted(self.changes, key=lambda c: (ORDER.index(c.kind), c.key))]

    def summary(self) -> str:
        kinds = [c.kind for c in self.changes]
        counts = ", ".join(f"{kinds.count(k)} {k.lower()}" for k in ORDER if k in kinds)
        return (f"against the baseline of {self.baseline_created or 'unknown date'}: {self.compared} verdicts compared"
                + (f"; {counts}" if counts else "; no change"))

    def markdown(self) -> str:
        lines = [f"**{'Something broke' if self.broke else 'Nothing broke'}** — {self.summary()}", ""]
        lines += [f"- {h}" for h in self.headlines()]
        if self.still_failing:
            lines += ["", f"Still failing (as in the baseline): {', '.join(f'`{k}`' for k in self.still_failing)}"]
        return "\n".join(lines)


def _f(x) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}"


def _ci(v: Verdict) -> str:
    return f" [{_f(v.ci[0])}, {_f(v.ci[1])}]" if v.ci else ""


def _where(v: Verdict) -> str:
    return f"{v.model} {v.task}" + ("" if v.condition == "clean" else f"/{v.condition}")


def _stat(old: Verdict, new: Verdict) -> str:
    sym = SYMBOLS.get(new.statistic, new.statistic)
    return f"{sym} {_f(old.value)} → {_f(new.value)}" if old.statistic == new.statistic else \
        f"{old.statistic} {_f(old.value)} → {new.statistic} {_f(new.value)}"


def _revisions(model: str, record: RunRecord, baseline: RunRecord) -> str:
    old, new = baseline.revision(model), record.revision(model)
    if old and new and old != new:
        return f" (revision {old[:10]} → {new[:10]})"
    return ""


def moved(old: Verdict, new: Verdict) -> bool:
    """Whether the statistic moved beyond the CIs (disjoint CIs; with one CI, the other value lies outside it)."""
    if old.statistic != new.statistic or any(math.isnan(x) for x in (old.value, new.value)):
        return False
    def ok(ci):
        return ci is not None and not any(math.isnan(x) for x in ci)
    if ok(old.ci) and ok(new.ci):
        return old.ci[1] < new.ci[0] or new.ci[1] < old.ci[0]
    if ok(old.ci):
        return not old.ci[0] <= new.value <= old.ci[1]
    if ok(new.ci):
        return not new.ci[0] <= old.value <= new.ci[1]
    return False


def _change(old: Verdict, new: Verdict, rev: str) -> Change | None:
    where, stat = _where(new), _stat(old, new)
    if new.claim == "agreement" and old.observed != new.observed and "equivalent" in (old.observed, new.observed):
        if old.observed == "equivalent":
            return Change("BROKE EQUIVALENCE", new.key, f"BROKE EQUIVALENCE: {where} {stat}{rev}", True)
        return Change("REACHED EQUIVALENCE", new.key, f"REACHED EQUIVALENCE: {where} {stat}{rev}",
                      old.passed and not new.passed)
    outcome = f"{old.observed} → {new.observed}, " if old.observed != new.observed else ""
    if old.passed and not new.passed:
        return Change("NOW FAILING", new.key, f"NOW FAILING: {where} {new.claim}: {outcome}{stat}{rev}", True)
    if new.passed and not old.passed:
        return Change("NOW PASSING", new.key, f"NOW PASSING: {where} {new.claim}: {outcome}{stat}{rev}")
    if outcome:
        return Change("CHANGED", new.key, f"CHANGED {new.claim.upper()}: {where}: {outcome}{stat}{rev}")
    if moved(old, new):
        return Change("MOVED", new.key, f"MOVED beyond CI: {where} {new.claim}: "
                      f"{SYMBOLS.get(new.statistic, new.statistic)} {_f(old.value)}{_ci(old)} → "
                      f"{_f(new.value)}{_ci(new)}{rev}")
    return None


def compare(record: RunRecord, baseline: RunRecord) -> Diff:
    """Every change from ``baseline`` to ``record``; see the module docstring for the rules."""
    old = {v.key: v for v in baseline.verdicts}
    new = {v.key: v for v in record.verdicts}
    diff = Diff(compared=len(old.keys() & new.keys()), baseline_created=baseline.created)
    for key in sorted(new):
        v = new[key]
        if key not in old:
            diff.changes.append(Change("NEW FAILING" if not v.passed else "NEW", key,
                                       f"{'NEW FAILING' if not v.passed else 'NEW'}: {v.line()}", not v.passed))
            continue
        change = _change(old[key], v, _revisions(v.model, record, baseline))
        if change:
            diff.changes.append(change)
        if not v.passed and not old[key].passed:
            diff.still_failing.append(key)
    for key in sorted(old.keys() - new.keys()):
        diff.changes.append(Change("GONE", key, f"GONE (not in this run): {key}"))
    return diff


# ----------------------------------------------------------------------------- baselines per revision
def _safe(name: str) -> str:
    """Revisions such as ``refs/pr/70`` become one file name (``refs_pr_70``)."""
    return name.replace("/", "_").replace("\\", "_")


def baseline_path(model: str, revision: str, root: Path | str = BASELINES) -> Path:
    return Path(root) / _safe(model) / f"{_safe(revision)}.json"


def save_baselines(record: RunRecord, root: Path | str = BASELINES) -> list[Path]:
    """Write each model's part of ``record`` to ``<root>/<model>/<revision>.json`` (models without a revision —
    reference systems, mutants — are stored under revision "local")."""
    paths = []
    for model in sorted({v.model for v in record.verdicts} | set(record.curves)):
        path = baseline_path(model, record.revision(model) or "local", root)
        paths.append(record.for_model(model).write(path))
    return paths


def find_baseline(model: str, revision: str | None = None, root: Path | str = BASELINES) -> RunRecord | None:
    """The baseline of ``model`` at ``revision`` if one is saved; otherwise the newest saved one of another
    revision (by the record's ``created`` time, not the file's), i.e. the previous release; None if none."""
    folder = Path(root) / _safe(model)
    if revision and (exact := baseline_path(model, revision, root)).is_file():
        return RunRecord.load(exact)
    found = [RunRecord.load(p) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    return max(found, key=lambda r: r.created) if found else None


def baseline_for(record: RunRecord, root: Path | str = BASELINES) -> RunRecord | None:
    """One baseline record covering every model of ``record`` that has one (see ``find_baseline``)."""
    found = [b for m in sorted(record.models) if (b := find_baseline(m, record.revision(m), root)) is not None]
    try:
        return merge(found) if found else None
    except RecordError as e:
        raise RecordError(f"baselines under {root}: {e}") from None
