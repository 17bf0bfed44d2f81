"""Tasks the suite asks both systems: offline mini twins (fixtures/tasks/), the paper's hub datasets, and task
folders of your own (with or without recordings) — all named the same way (harness.tasks.sources).

    from harness.tasks import load_task, describe
    task = load_task("topic"); items = task.subset(40); task.is_correct(items[0], "sports")
    load_task("ag_news"); load_task("path/to/my_task")
"""

from .corpus import CorpusUnavailable
from .hub import HUB_TASKS, HubUnavailable, hub_task_names, hub_unavailable_reason, load_hub_task
from .mini import DEFAULT_ROOT, UnknownTaskError, mini_task_names
from .recording import load_recording
from .schema import TaskSchemaError, tts_problems
from .sources import TaskInfo, claim_tasks, describe, load_task, parse_sources
from .types import Item, Task, normalize_answer
from .user import load_user_task

__all__ = [
    "DEFAULT_ROOT",
    "HUB_TASKS",
    "CorpusUnavailable",
    "HubUnavailable",
    "Item",
    "Task",
    "TaskInfo",
    "TaskSchemaError",
    "UnknownTaskError",
    "claim_tasks",
    "describe",
    "hub_task_names",
    "hub_unavailable_reason",
    "load_hub_task",
    "load_recording",
    "load_task",
    "load_user_task",
    "mini_task_names",
    "normalize_answer",
    "parse_sources",
    "tts_problems",
]
