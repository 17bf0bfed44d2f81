"""Offline "mini twins" of the paper's tasks, read from fixtures/tasks/.

Layout per task <name>:
  <name>.toml         metadata: kind, text_sufficient, instruction, labels, paper_task, and optionally
                      [speech.<label>] TTS params and [corpus] (open QA read from an installed package)
  <name>.jsonl        evaluation items, one JSON object per line (see schema.KEYS)
  train/<name>.jsonl  optional training items, same schema, ids <name>-train-NNNN, disjoint from eval

Speech parameters are derived from the label through [speech.<label>] in the toml, never written per
item: for a text-insufficient task the label *is* the prosody, so one table keeps them from drifting.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from harness import paths

from .corpus import trivia_records
from .schema import Record, TaskSchemaError, check_task_wide, read_jsonl
from .types import KINDS, Item, Task

DEFAULT_ROOT = paths.TASKS

_META_REQUIRED = {"kind": str, "text_sufficient": bool, "instruction": str, "paper_task": str}
_META_OPTIONAL = {"labels", "speech", "corpus", "control"}


class UnknownTaskError(LookupError):
    """No mini twin of that name; the message lists the known ones."""


def mini_task_names(root: Path | None = None) -> list[str]:
    """Names of the mini twins: one per <name>.toml in the fixtures folder."""
    return sorted(p.stem for p in (root or DEFAULT_ROOT).glob("*.toml"))


def load_task(name: str, *, root: Path | None = None) -> Task:
    """Load and schema-check one mini task; any problem raises TaskSchemaError naming file:line."""
    root = Path(root) if root is not None else DEFAULT_ROOT
    toml_path = root / f"{name}.toml"
    if not toml_path.is_file():
        known = mini_task_names(root)
        raise UnknownTaskError(f"unknown mini task {name!r} (no {toml_path}); known: {', '.join(known) or 'none'}")
    meta = read_meta(toml_path)
    kind, labels = meta["kind"], tuple(meta.get("labels", ()))

    evals: list[Record] = []
    problems: list[str] = []
    if "corpus" in meta:
        recs, _unused = trivia_records(name, meta["corpus"])
        evals += recs
    eval_path = root / f"{name}.jsonl"
    if eval_path.is_file():
        recs, probs = read_jsonl(eval_path, kind=kind, task=name, labels=labels, train=False)
        evals += recs
        problems += probs
    elif "corpus" not in meta:
        problems.append(f"{eval_path}: missing (every mini task needs its evaluation items)")
    trains: list[Record] = []
    train_path = root / "train" / f"{name}.jsonl"
    if train_path.is_file():
        trains, probs = read_jsonl(train_path, kind=kind, task=name, labels=labels, train=True)
        problems += probs
    problems += check_task_wide(evals, trains, text_sufficient=meta["text_sufficient"])
    if problems:
        raise TaskSchemaError(problems)

    speech = meta.get("speech", {})
    to_item = lambda r: _item(name, kind, labels, speech, r.data)  # noqa: E731
    return Task(
        name=name,
        kind=kind,
        text_sufficient=meta["text_sufficient"],
        instruction=meta["instruction"],
        labels=labels,
        items=tuple(map(to_item, evals)),
        train=tuple(map(to_item, trains)),
        source="mini",
        paper_task=meta["paper_task"],
    )


def _item(task: str, kind: str, labels: tuple[str, ...], speech: dict, d: dict) -> Item:
    if kind == "classification":
        options: tuple[str, ...] = labels
    elif kind == "multiple_choice":
        options = tuple(d["options"])
    else:
        options = ()
    return Item(
        id=d["id"],
        task=task,
        text=d["text"],
        label=d["label"],
        options=options,
        aliases=tuple(d.get("aliases", ())),
        speech=speech.get(d["label"], {}),
    )


def read_meta(path: Path, *, required: dict | None = None, optional: set | None = None) -> dict:
    """Parse and check the toml; problems name the file. ``required``/``optional``: other key sets (a user's
    task folder makes ``paper_task`` optional and allows ``name``)."""
    required = _META_REQUIRED if required is None else required
    optional = _META_OPTIONAL if optional is None else optional
    try:
        meta = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise TaskSchemaError([f"{path}: not valid TOML ({e})"]) from e
    except OSError as e:
        raise TaskSchemaError([f"{path}: cannot read ({e})"]) from e
    problems = []
    for key, typ in required.items():
        if not isinstance(meta.get(key), typ):
            problems.append(f"{path}: {key!r} is required and must be a {typ.__name__}")
    for key in optional & {"paper_task", "name"}:
        if key in meta and not (isinstance(meta[key], str) and meta[key].strip()):
            problems.append(f"{path}: {key!r} must be a non-empty string")
    if "control" in meta and not isinstance(meta["control"], bool):
        problems.append(f"{path}: 'control' must be true or false")
    unknown = meta.keys() - required.keys() - optional
    if unknown:
        problems.append(f"{path}: unknown key(s) {sorted(unknown)}")
    if problems:
        raise TaskSchemaError(problems)
    kind = meta["kind"]
    labels = meta.get("labels", [])
    if kind not in KINDS:
        problems.append(f"{path}: kind {kind!r} is not one of {list(KINDS)}")
    elif kind == "classification":
        if not (isinstance(labels, list) and len(labels) >= 2 and all(isinstance(x, str) and x for x in labels)):
            problems.append(f"{path}: classification needs 'labels', a list of at least two strings")
        elif len(set(labels)) != len(labels):
            problems.append(f"{path}: duplicate labels {labels}")
    elif labels:
        problems.append(f"{path}: 'labels' only applies to classification tasks")
    speech = meta.get("speech")
    if speech is not None:
        if not isinstance(speech, dict) or set(speech) != set(labels):
            problems.append(f"{path}: [speech] needs exactly one table per label {labels}")
        else:
            for lab, params in speech.items():
                if not isinstance(params, dict) or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in params.values()
                ):
                    problems.append(f"{path}: [speech.{lab}] must map parameter names to numbers")
    corpus = meta.get("corpus")
    if corpus is not None and (kind != "open_qa" or not isinstance(corpus, dict) or "file" not in corpus):
        problems.append(f"{path}: [corpus] is for open_qa tasks and needs 'file'")
    if problems:
        raise TaskSchemaError(problems)
    return meta
