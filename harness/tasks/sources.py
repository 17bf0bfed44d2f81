"""One way to name a task, wherever its items come from: `pytest --tasks …` and `python -m harness answer --task …`.

A task source is one of
  - a mini twin's name (fixtures/tasks/<name>.toml): offline, the default;
  - a paper dataset's name (ag_news, sst2, csqa, triviaqa, meld, mustard): read from the hub;
  - a path to a task folder of your own (harness/tasks/user.py documents the format).

`describe` reads only metadata (no items, no download), so test collection can decide from the task's own
`text_sufficient` and `kind` which claims it gets; `load_task` returns the Task.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .hub import HUB_TASKS, hub_task_names, hub_unavailable_reason, load_hub_task
from .mini import DEFAULT_ROOT, UnknownTaskError, mini_task_names, read_meta
from .mini import load_task as load_mini_task
from .types import Task
from .user import load_user_task, read_user_meta, task_folder, task_name


@dataclass(frozen=True)
class TaskInfo:
    source: str           # as given: the id the tests and the run record use
    name: str             # the Task's name (item ids start with it)
    origin: str           # "mini" | "hub" | "folder"
    kind: str
    text_sufficient: bool
    control: bool = False   # a control task (``control = true``): tested only where a model's claims file names it

    @property
    def agreement_task(self) -> bool:
        """Closed answers (classification, multiple choice): κ is defined. Open QA is accuracy only (as in
        the paper, where TriviaQA is left out of the κ analysis)."""
        return self.kind != "open_qa"

    def unavailable(self) -> str | None:
        """Why the task cannot be loaded here (a hub dataset offline), else None."""
        return hub_unavailable_reason(self.source) if self.origin == "hub" else None


def _is_path(source: str) -> bool:
    return os.sep in source or "/" in source or source.startswith(".") or Path(source).expanduser().exists()


def unknown(source: str) -> UnknownTaskError:
    return UnknownTaskError(
        f"unknown task {source!r}; known: mini twins {', '.join(mini_task_names())}; paper datasets "
        f"{', '.join(hub_task_names())}; or a path to a task folder of your own (with task.toml)")


def describe(source: str, *, root: Path | None = None) -> TaskInfo:
    """The task's metadata; raises UnknownTaskError, FileNotFoundError or TaskSchemaError (file named)."""
    source = str(source).strip()
    if source in mini_task_names(root):
        meta = read_meta((root or DEFAULT_ROOT) / f"{source}.toml")
        return TaskInfo(source, source, "mini", meta["kind"], meta["text_sufficient"], bool(meta.get("control")))
    if source in HUB_TASKS:
        spec = HUB_TASKS[source]
        return TaskInfo(source, source, "hub", spec.kind, spec.text_sufficient)
    if _is_path(source):
        folder = task_folder(source)
        meta = read_user_meta(folder)
        return TaskInfo(source, task_name(folder, meta), "folder", meta["kind"], meta["text_sufficient"])
    raise unknown(source)


def load_task(source: str, *, root: Path | None = None) -> Task:
    """The Task for any source (mini name, paper dataset name, task folder path)."""
    info = describe(source, root=root)
    if info.origin == "mini":
        return load_mini_task(source, root=root)
    if info.origin == "hub":
        return load_hub_task(source)
    return load_user_task(source)


def parse_sources(values: list[str] | str | None) -> list[str]:
    """``--tasks a,b --tasks c`` → [a, b, c] (order kept, duplicates dropped); None/empty → the mini twins."""
    if not values:
        return mini_task_names()
    values = [values] if isinstance(values, str) else values
    out = [s.strip().rstrip("/") or s.strip() for v in values for s in v.split(",") if s.strip()]
    return list(dict.fromkeys(out))


def claim_tasks(infos: list[TaskInfo]) -> tuple[list[str], list[str]]:
    """(text-sufficient, text-insufficient) sources that get the agreement-based claims, from the tasks' own
    metadata: text_sufficient and a closed answer kind. Control tasks are left out: they run only for the models
    whose claims files name them (the known-answer controls)."""
    closed = [i for i in infos if i.agreement_task and not i.control]
    return [i.source for i in closed if i.text_sufficient], [i.source for i in closed if not i.text_sufficient]
