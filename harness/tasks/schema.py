"""Explicit schema check for task JSONL files (no jsonschema dependency).

Every problem names file:line, because these files are written by hand and a bare "invalid label"
in a 200-line file is useless. Checks that span the whole task (duplicate texts, eval/train overlap)
run after the per-line checks so one report lists everything.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from .types import MC_OPTIONS, normalize_answer

KEYS = {
    # kind: (required keys, optional keys)
    "classification": ({"id", "text", "label"}, set()),
    "multiple_choice": ({"id", "text", "label", "options"}, set()),
    "open_qa": ({"id", "text", "label"}, {"aliases"}),
}

USER_KEYS = {"audio"}  # a user's task folder: an item may carry its own recording

_ID_TAIL = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class TaskSchemaError(ValueError):
    """A task file breaks the schema; the message lists every problem as `file:line: problem`."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        shown = problems[:30] + ([f"... and {len(problems) - 30} more"] if len(problems) > 30 else [])
        super().__init__("task schema check failed:\n  " + "\n  ".join(shown))


@dataclass(frozen=True)
class Record:
    """One validated line: where it came from plus its fields."""

    where: str  # "path:line"
    data: dict


def read_jsonl(path: Path, *, kind: str, task: str, labels: tuple[str, ...], train: bool,
               prepare=None) -> tuple[list[Record], list[str]]:
    """Parse and check each line; returns the good records and the problems found.

    ``prepare(obj, lineno) -> (obj, problems)`` lets a user's task folder fill in ids and check its extra
    fields (the recording) before the common checks."""
    records: list[Record] = []
    problems: list[str] = []
    required, optional = KEYS[kind]
    if prepare is not None:
        optional = optional | USER_KEYS
    prefix = f"{task}-train-" if train else f"{task}-"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        return [], [f"{path}: cannot read ({e})"]
    for lineno, line in enumerate(lines, start=1):
        where = f"{path}:{lineno}"
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(f"{where}: not valid JSON ({e.msg})")
            continue
        if not isinstance(obj, dict):
            problems.append(f"{where}: expected a JSON object, got {type(obj).__name__}")
            continue
        extra: list[str] = []
        if prepare is not None:
            obj, extra = prepare(obj, lineno)
        bad = extra + _check_record(obj, kind=kind, labels=labels, required=required, optional=optional, prefix=prefix, train=train)
        problems.extend(f"{where}: {p}" for p in bad)
        if not bad:
            records.append(Record(where, obj))
    if not records and not problems:
        problems.append(f"{path}: no items")
    return records, problems


def _check_record(obj: dict, *, kind, labels, required, optional, prefix, train) -> list[str]:
    out: list[str] = []
    missing = required - obj.keys()
    if missing:
        out.append(f"missing key(s) {sorted(missing)}")
    unknown = obj.keys() - required - optional
    if unknown:
        out.append(f"unknown key(s) {sorted(unknown)} (allowed: {sorted(required | optional)})")
    for key in ("id", "text", "label"):
        if key in obj and (not isinstance(obj[key], str) or not obj[key].strip()):
            out.append(f"{key!r} must be a non-empty string")
    if out:
        return out
    if obj["text"] != obj["text"].strip():
        out.append("text has leading/trailing whitespace")
    rid = obj["id"]
    tail = rid[len(prefix):] if rid.startswith(prefix) else None
    if tail is None or not _ID_TAIL.match(tail) or (not train and tail.startswith("train-")):
        out.append(f"id {rid!r} must look like {prefix}NNNN")
    if kind == "classification" and obj["label"] not in labels:
        out.append(f"label {obj['label']!r} not in task labels {list(labels)}")
    if kind == "multiple_choice":
        opts = obj["options"]
        if not isinstance(opts, list) or not all(isinstance(o, str) and o.strip() for o in opts):
            out.append("options must be a list of non-empty strings")
        elif len(opts) != MC_OPTIONS:
            out.append(f"multiple choice needs exactly {MC_OPTIONS} options, got {len(opts)}")
        elif len({normalize_answer(o) for o in opts}) != MC_OPTIONS:
            out.append(f"options are not distinct: {opts}")
        elif obj["label"] not in opts:
            out.append(f"label {obj['label']!r} is not one of the options {opts}")
    if kind == "open_qa" and "aliases" in obj:
        al = obj["aliases"]
        if not isinstance(al, list) or not all(isinstance(a, str) and a.strip() for a in al):
            out.append("aliases must be a list of non-empty strings")
    return out


def check_task_wide(
    evals: list[Record], trains: list[Record], *, text_sufficient: bool
) -> list[str]:
    """Cross-line checks: unique ids, no duplicate texts, and no eval text inside the training set.

    A text-insufficient task says each sentence once per label on purpose, so there only the pair
    (text, label) has to be unique.
    """
    problems: list[str] = []
    seen_ids: dict[str, str] = {}
    for rec in evals + trains:
        rid = rec.data["id"]
        if rid in seen_ids:
            problems.append(f"{rec.where}: duplicate id {rid!r} (first at {seen_ids[rid]})")
        else:
            seen_ids[rid] = rec.where
    for group in (evals, trains):
        seen: dict[object, str] = {}
        for rec in group:
            norm = normalize_answer(rec.data["text"])
            key = norm if text_sufficient else (norm, rec.data["label"])
            if key in seen:
                problems.append(f"{rec.where}: duplicate text (first at {seen[key]})")
            else:
                seen[key] = rec.where
    train_texts = {normalize_answer(r.data["text"]): r.where for r in trains}
    for rec in evals:
        hit = train_texts.get(normalize_answer(rec.data["text"]))
        if hit:
            problems.append(f"{rec.where}: evaluation text also in training data ({hit})")
    return problems


# --- TTS friendliness: used to filter the trivia corpus and by the tests over every mini task. ---

_ALLOWED_CHARS = re.compile(r"^[A-Za-z0-9 ,.'?!;:\-]+$")
_DOTTED_ABBREV = re.compile(
    r"\b(?:[A-Za-z]\.\s?){2,}"  # U.S., E.T., A. A.
    r"|\b[A-Z][a-z]+ [A-Z]\. [A-Z][a-z]"  # John F. Kennedy (but not "so was I. Then")
    r"|\b[A-Z]\.[A-Z]\b"  # U.S with the last dot lost
    r"|\b(?:Mr|Mrs|Ms|Dr|St|Jr|Sr|vs|etc|Inc|Co|No)\."
)
_URL = re.compile(r"https?:|www\.|\.(com|org|net)\b", re.I)


def tts_problems(text: str, *, allow_digits: bool = True) -> list[str]:
    """Why `text` would be read badly by a TTS engine (empty list = fine)."""
    out = []
    if not _ALLOWED_CHARS.match(text):
        odd = sorted({c for c in text if not re.match(r"[A-Za-z0-9 ,.'?!;:\-]", c)})
        out.append(f"symbols {''.join(odd)!r}")
    if _URL.search(text):
        out.append("URL")
    if _DOTTED_ABBREV.search(text):
        out.append("abbreviation with dots")
    if not allow_digits and re.search(r"\d", text):
        out.append("digits (spell numbers out)")
    if "  " in text:
        out.append("double space")
    return out
