"""Tasks the suite asks both systems: offline mini twins (fixtures/tasks/) and the real hub datasets.

    from harness.tasks import load_task, mini_task_names, load_hub_task, HubUnavailable
    task = load_task("topic"); items = task.subset(40); task.is_correct(items[0], "sports")
"""

from .corpus import CorpusUnavailable
from .hub import HUB_TASKS, HubUnavailable, hub_task_names, load_hub_task
from .mini import DEFAULT_ROOT, UnknownTaskError, load_task, mini_task_names
from .schema import TaskSchemaError, tts_problems
from .types import Item, Task, normalize_answer

__all__ = [
    "DEFAULT_ROOT",
    "HUB_TASKS",
    "CorpusUnavailable",
    "HubUnavailable",
    "Item",
    "Task",
    "TaskSchemaError",
    "UnknownTaskError",
    "hub_task_names",
    "load_hub_task",
    "load_task",
    "mini_task_names",
    "normalize_answer",
    "tts_problems",
]
