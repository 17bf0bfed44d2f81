"""A task of your own: a folder (or its task.toml) with items, optionally your own recordings.

    my_task/
      task.toml       kind, text_sufficient, instruction; labels (classification); optional name, paper_task
      items.jsonl     evaluation items, one JSON object per line
      train.jsonl     optional training items (babble noise and LEACE fitting draw on them), same fields
      clips/...       recordings, referenced by the items' "audio" field (relative to the folder)

Item fields: "text" (what is said: the oracle transcript and the WER reference), "label", "options" (exactly
five, multiple choice), "aliases" (open QA), "audio" (a WAV/FLAC/MP3/OGG file at any rate; without it the
text is spoken by the offline TTS), "id" (optional; default: the line number). Item ids become
``<name>-<id>`` (training: ``<name>-train-<id>``). Every problem is reported as ``file:line: what``.
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from .mini import _META_OPTIONAL, _META_REQUIRED, _item, read_meta
from .recording import SUFFIXES
from .schema import TaskSchemaError, check_task_wide, read_jsonl
from .types import Task

TOML, ITEMS, TRAIN = "task.toml", "items.jsonl", "train.jsonl"
_REQUIRED = {k: v for k, v in _META_REQUIRED.items() if k != "paper_task"}
_OPTIONAL = _META_OPTIONAL | {"paper_task", "name"}


def task_folder(source: str | Path) -> Path:
    """The task folder for a path to the folder or to its task.toml; a clear error otherwise."""
    path = Path(source).expanduser()
    if path.is_file() and path.name == TOML:
        path = path.parent
    if not path.is_dir():
        raise FileNotFoundError(f"task {str(source)!r}: no such folder (a task of your own is a folder with "
                                f"{TOML} and {ITEMS}; see harness/tasks/user.py)")
    if not (path / TOML).is_file():
        raise TaskSchemaError([f"{path / TOML}: missing (a task folder needs {TOML} and {ITEMS})"])
    return path


def task_name(folder: Path, meta: dict) -> str:
    """The toml's ``name``, else the folder's name, as an item-id-friendly slug."""
    raw = meta.get("name") or folder.resolve().name
    return re.sub(r"[^a-z0-9]+", "-", raw.lower()).strip("-") or "task"


def read_user_meta(folder: Path) -> dict:
    return read_meta(folder / TOML, required=_REQUIRED, optional=_OPTIONAL)


def load_user_task(source: str | Path) -> Task:
    """Load and check a task folder; every problem (file:line) is raised together as TaskSchemaError."""
    folder = task_folder(source)
    meta = read_user_meta(folder)
    name, kind, labels = task_name(folder, meta), meta["kind"], tuple(meta.get("labels", ()))

    def reader(path: Path, train: bool):
        prefix = f"{name}-train-" if train else f"{name}-"

        def prepare(obj: dict, lineno: int):
            obj, problems = dict(obj), []
            given = obj.get("id", f"{lineno:04d}")
            if not isinstance(given, (str, int)) or isinstance(given, bool) or not str(given).strip():
                problems.append(f"'id' must be a non-empty string, got {given!r}")
                given = f"{lineno:04d}"
            obj["id"] = prefix + str(given).strip().lower()
            if "audio" in obj:
                problems += _check_audio(folder, obj)
            return obj, problems

        return read_jsonl(path, kind=kind, task=name, labels=labels, train=train, prepare=prepare)

    problems: list[str] = []
    evals, trains = [], []
    if (folder / ITEMS).is_file():
        evals, found = reader(folder / ITEMS, train=False)
        problems += found
    else:
        problems.append(f"{folder / ITEMS}: missing (the evaluation items)")
    if (folder / TRAIN).is_file():
        trains, found = reader(folder / TRAIN, train=True)
        problems += found
    problems += check_task_wide(evals, trains, text_sufficient=meta["text_sufficient"])
    if problems:
        raise TaskSchemaError(problems)

    speech = meta.get("speech", {})

    def to_item(record):
        item = _item(name, kind, labels, speech, record.data)
        audio = record.data.get("audio")
        return item if audio is None else replace(item, audio=str((folder / audio).resolve()))

    return Task(name=name, kind=kind, text_sufficient=meta["text_sufficient"], instruction=meta["instruction"],
                labels=labels, items=tuple(map(to_item, evals)), train=tuple(map(to_item, trains)),
                source=f"folder:{folder.resolve()}", paper_task=meta.get("paper_task", ""))


def _check_audio(folder: Path, obj: dict) -> list[str]:
    audio = obj["audio"]
    if not isinstance(audio, str) or not audio.strip():
        return [f"'audio' must be a file path relative to {folder}, got {audio!r}"]
    path = folder / audio
    if Path(audio).suffix.lower() not in SUFFIXES:
        return [f"audio {audio!r}: unsupported file type (use one of {', '.join(SUFFIXES)})"]
    if not path.is_file():
        return [f"audio {audio!r}: no such file ({path})"]
    return []
