"""What each model is expected to do, per task and claim: ``fixtures/claims/*.toml`` read and checked.

``defaults.toml`` holds each claim's thresholds (``[thresholds.<claim>]``) and the outcomes assumed for models the
paper did not test (``[new_models.*]``); ``<model id>.toml`` overrides them per task. Every claim module decides an
*observed* outcome from the evidence alone, then compares it with the expected one here — so a verdict reads the
same whichever way a model moves, and a report can say "broke" or "newly reached" equivalence. Thresholds come from
the paper or from statistics, never fitted to our own fixtures.
"""
from __future__ import annotations

from harness import paths

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from harness.claims.checks import count, number, text
from harness.claims.registry import NAMES, claim, expand
from harness.verdict import Verdict

CLAIMS_DIR = paths.CLAIMS


class ClaimsFileError(ValueError):
    """A claims file is malformed; the message names the file and the entry."""


# Thresholds every claim takes, besides its own: ``items``, the items per task for this expectation (0: the model's
# default; ``--items`` caps it), so that a control can be sized from the effect it must show (Evidence.claim_items).
SHARED_THRESHOLDS = {"items": count}
# paper: the paper's number; seed: what the seed summary said (text); tier: N/S/A (../shared/PAPER.md)
ENTRY_FIELDS = {"expected": text, "paper": number(-1e9, 1e9), "tier": text, "seed": text, "note": text,
                "known_issue": text}


def _check_fields(values: dict, checks: dict, where: str) -> None:
    for key, value in values.items():
        problem = checks[key](value) if key in checks else None
        if problem:
            raise ClaimsFileError(f"{where}: {key} {problem}")


def _task_problem(task: str) -> str | None:
    """None if ``harness.tasks`` knows the task (a mini twin or a hub dataset) or it names a task file."""
    from harness.tasks import hub_task_names, mini_task_names

    known = sorted({*mini_task_names(), *hub_task_names()})
    if task in known or "/" in task or task.endswith(".toml"):
        return None
    return f"unknown task {task!r}; known: {', '.join(known)}"


@dataclass(frozen=True)
class Expectation:
    model: str
    task: str
    claim: str
    expected: str
    thresholds: dict
    paper: dict = field(default_factory=dict)
    source: str = ""                  # the file (and table) this came from
    known_issue: str | None = None    # a documented, expected failure (the test is a strict xfail)

    def __post_init__(self):
        if self.claim not in NAMES:
            raise ClaimsFileError(f"{self.source}: unknown claim {self.claim!r} (expected one of {NAMES})")
        outcomes = claim(self.claim).OUTCOMES
        if self.expected not in outcomes:
            raise ClaimsFileError(f"{self.source}: {self.model}/{self.task}/{self.claim}: expected outcome "
                                  f"{self.expected!r} is not one of {outcomes}")

    def verdict(self, observed: str, **kw) -> Verdict:
        """The Verdict of this expectation given the observed outcome (``kw``: the statistic and its evidence)."""
        return Verdict(model=self.model, task=self.task, claim=self.claim, expected=self.expected,
                       observed=observed, passed=observed == self.expected, thresholds=self.thresholds,
                       paper=self.paper, **kw)


def _read(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ClaimsFileError(f"{path}: {exc}") from None


def load_defaults(directory: Path = CLAIMS_DIR) -> dict:
    data = _read(Path(directory) / "defaults.toml")
    missing = [c for c in NAMES if c not in data.get("thresholds", {})]
    if missing:
        raise ClaimsFileError(f"{directory}/defaults.toml: [thresholds.*] missing for {missing}")
    for name in NAMES:
        table, checks = data["thresholds"][name], claim(name).THRESHOLDS
        absent = sorted(set(checks) - set(table))
        if absent:
            raise ClaimsFileError(f"{directory}/defaults.toml [thresholds.{name}]: missing {absent}")
        _check_fields(table, {**SHARED_THRESHOLDS, **checks}, f"{directory}/defaults.toml [thresholds.{name}]")
    return data


def expectations(model: str, *, text_sufficient: list[str], text_insufficient: list[str],
                 controls: list[str] = (), directory: Path = CLAIMS_DIR) -> list[Expectation]:
    """The model's expectations on the given tasks: its own file's entries for them if it has a file (every entry
    is checked, also those for tasks not asked for), else the defaults' per task kind. ``controls``: control tasks
    (task metadata ``control = true``) — only a model's own file can name them; the defaults never do."""
    directory = Path(directory)
    defaults = load_defaults(directory)
    own = directory / f"{model}.toml"
    out = []
    if own.exists():
        data = _read(own)
        if data.get("model") != model:
            raise ClaimsFileError(f"{own}: model = {data.get('model')!r}, expected {model!r} (the file name)")
        for task, claims in data.get("tasks", {}).items():
            if _task_problem(task):
                raise ClaimsFileError(f"{own} [tasks.{task}]: {_task_problem(task)}")
            if not isinstance(claims, dict):
                raise ClaimsFileError(f"{own} [tasks.{task}]: expected a table of claims, got {claims!r}")
            for name, entry in claims.items():
                out += _expectations(model, task, name, entry, defaults, f"{own.name} [tasks.{task}]")
        asked = {*text_sufficient, *text_insufficient, *controls}
        return [e for e in out if e.task in asked]
    for kind, tasks in (("text_sufficient", text_sufficient), ("text_insufficient", text_insufficient)):
        for task in tasks:
            for name, entry in defaults.get("new_models", {}).get(kind, {}).items():
                out += _expectations(model, task, name, entry, defaults, f"defaults.toml [new_models.{kind}]")
    return out


def user_task_expectations(model: str, *, text_sufficient: list[str], text_insufficient: list[str],
                           directory: Path = CLAIMS_DIR) -> list[Expectation]:
    """Expectations on task folders of a user's own for a model with its own claims file, which cannot name
    them: the file's ``[user_tasks.text_sufficient]`` / ``[user_tasks.text_insufficient]`` outcomes (none if
    absent). Models without a file already get the defaults' per-kind outcomes from :func:`expectations`."""
    directory = Path(directory)
    own = directory / f"{model}.toml"
    if not own.exists() or not (text_sufficient or text_insufficient):
        return []
    data, defaults = _read(own), load_defaults(directory)
    out = []
    for kind, tasks in (("text_sufficient", text_sufficient), ("text_insufficient", text_insufficient)):
        for task in tasks:
            for name, entry in data.get("user_tasks", {}).get(kind, {}).items():
                out += _expectations(model, task, name, entry, defaults, f"{own.name} [user_tasks.{kind}]")
    return out


def _expectations(model, task, name, entry, defaults, source) -> list[Expectation]:
    """One expectation per variant of the claim (noise: per kind; tests read ``[model/task/<kind>]``)."""
    return expand(_expectation(model, task, name, entry, defaults, source))


def _expectation(model, task, name, entry, defaults, source) -> Expectation:
    if isinstance(entry, str):
        entry = {"expected": entry}
    if not isinstance(entry, dict):
        raise ClaimsFileError(f"{source}: {name} must be an outcome or a table, got {entry!r}")
    if "expected" not in entry:
        raise ClaimsFileError(f"{source}: {name} needs an 'expected' outcome")
    if name not in NAMES:
        raise ClaimsFileError(f"{source}: unknown claim {name!r} (expected one of {NAMES})")
    thresholds = dict(defaults["thresholds"][name])
    thresholds.update({k: v for k, v in entry.items() if k in thresholds or k in SHARED_THRESHOLDS})
    unknown = set(entry) - set(thresholds) - set(ENTRY_FIELDS)
    if unknown:
        raise ClaimsFileError(f"{source}: {name}: unknown keys {sorted(unknown)}")
    _check_fields(entry, {**SHARED_THRESHOLDS, **claim(name).THRESHOLDS, **ENTRY_FIELDS}, f"{source}: {name}")
    paper = {k: entry[k] for k in ("tier", "seed", "note") if k in entry}
    if "paper" in entry:
        paper["value"] = entry["paper"]
    return Expectation(model, task, name, entry["expected"], thresholds, paper, source, entry.get("known_issue"))
